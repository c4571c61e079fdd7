"""The semantic head's training targets from a panoptic map, which every instance method shares."""

from __future__ import annotations

import numpy as np
import torch

from spino.classes import ClassSet
from spino.config import section
from spino.encoding import instance_of, semantic_of


@section("panoptic.train.targets")
class TargetConfig:
    small_instance_area: int  # instances smaller than this weigh small_instance_weight
    small_instance_weight: float


def semantic_targets(panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig) -> dict[str, torch.Tensor]:
    """The semantic head's targets: train ids (255 ignore) and the pixel weights,
    ``small_instance_weight`` on thing instances under ``small_instance_area``."""
    semantic = semantic_of(panoptic).astype(np.int64)
    instance = instance_of(panoptic)
    thing = class_set.thing_mask()[semantic.clip(0, 255)] & (instance > 0)
    ids, inverse, areas = np.unique(np.where(thing, panoptic, 0), return_inverse=True, return_counts=True)
    small = (areas < cfg.small_instance_area) & (ids != 0)
    weights = np.where(small[inverse.reshape(panoptic.shape)], cfg.small_instance_weight, 1.0).astype(np.float32)
    return {"semantic": torch.from_numpy(semantic), "semantic_weights": torch.from_numpy(weights)}
