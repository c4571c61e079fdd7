"""The panoptic model's instance methods (config ``panoptic.model.instance``), one package each:
``center_offset`` (Panoptic-DeepLab's centre heatmap and offsets, SPINO's) and ``solov2``
(location-based masks), each an ``InstanceMethod`` (``base.py``) in its ``method.py`` with its
settings (config ``panoptic.model.<name>``, an ``@owned`` class) in its torch-free ``settings.py``.

A new method is its package and its entry here (out of the tree: entry point
``spino.instance_methods`` naming an ``Extension``). The entries are torch-free: the workflow plans
with this registry; a method's class is imported when a model is built.
"""

from __future__ import annotations

from spino.panoptic.instances.center_offset.settings import CenterOffsetConfig
from spino.panoptic.instances.solov2.settings import Solov2Config
from spino.registry import Extension, Registry

INSTANCE_METHODS: Registry[Extension] = Registry(
    "instance method",
    choices="panoptic.model.instance",
    group="spino.instance_methods",
    settings="panoptic.model.{name}",
)
INSTANCE_METHODS.register(
    "center_offset", Extension("spino.panoptic.instances.center_offset.method:CenterOffset", CenterOffsetConfig)
)
INSTANCE_METHODS.register("solov2", Extension("spino.panoptic.instances.solov2.method:Solov2", Solov2Config))
