"""The panoptic model's instance methods (config ``panoptic.model.instance``), one module each.

A new method is a module with an ``InstanceMethod`` subclass, one line here, its settings in the
schema (``panoptic.model.<name>``) and a field of ModelConfig for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spino.config import register_choices
from spino.errors import InputError
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.instances.center_offset import CenterOffset
from spino.panoptic.instances.solov2 import Solov2

if TYPE_CHECKING:
    from spino.panoptic.model import ModelConfig

INSTANCE_METHODS: dict[str, type[InstanceMethod]] = {"center_offset": CenterOffset, "solov2": Solov2}
register_choices("panoptic.model.instance", INSTANCE_METHODS)


def instance_method(model_cfg: ModelConfig) -> InstanceMethod:
    if model_cfg.instance not in INSTANCE_METHODS:
        raise InputError(
            f"unknown instance method {model_cfg.instance!r}; expected one of {', '.join(INSTANCE_METHODS)}"
        )
    return INSTANCE_METHODS[model_cfg.instance](model_cfg)


__all__ = ["INSTANCE_METHODS", "InstanceMethod", "instance_method"]
