"""The panoptic model's instance methods (config ``panoptic.model.instance``), one package each:
``center_offset`` (Panoptic-DeepLab's centre heatmap and offsets, SPINO's) and ``solov2``
(location-based masks). A new method is an ``InstanceMethod`` subclass registered with
``@register_instance_method`` and, if it has settings, its schema section ``panoptic.model.<name>``.
"""

from __future__ import annotations

from spino.panoptic.instances.base import INSTANCE_METHODS, InstanceMethod, Widths, register_instance_method
from spino.panoptic.instances.center_offset import CenterOffset
from spino.panoptic.instances.solov2 import Solov2

__all__ = ["INSTANCE_METHODS", "CenterOffset", "InstanceMethod", "Solov2", "Widths", "register_instance_method"]
