"""The student weighs what its teacher is sure of (config ``panoptic.train.confidence``).

A pseudo-label store holds each pixel's confidence: the mean softmax probability of its class over
the label generator's scales. The semantic loss can weigh each pixel by it (as DAFormer weighs its
pseudo-labels by their quality) or drop the pixels under a threshold (as ST++ and UniMatch do);
a thing instance whose mean confidence is under ``instance_threshold`` becomes crowd (its class,
no instance number), which every instance method already excludes from its instance loss while
the semantic loss keeps it. Ground truth is certain: its samples are never changed here.
"""

from __future__ import annotations

import numpy as np
import torch

from spino.classes import IGNORE, ClassSet
from spino.config import section
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, instance_of, semantic_of


@section("panoptic.train.confidence")
class ConfidenceConfig:
    semantic: str  # none | weight | threshold
    pixel_threshold: float  # semantic: threshold
    instance_threshold: float  # 0: every instance counts

    @property
    def used(self) -> bool:
        """Whether training reads the stores' confidence at all (off: the batches of older spino)."""
        return self.semantic != "none" or self.instance_threshold > 0


def uncertain_instances_as_crowd(
    panoptic: np.ndarray, confidence: np.ndarray, class_set: ClassSet, threshold: float
) -> np.ndarray:
    """``panoptic`` with every thing instance whose mean ``confidence`` over its pixels is under
    ``threshold`` turned into crowd of its class: no centre, offset or mask target, semantic kept."""
    semantic, instance = semantic_of(panoptic), instance_of(panoptic)
    thing = (panoptic != IGNORE_PANOPTIC) & class_set.thing_mask()[semantic.clip(0, 255)] & (instance > 0)
    ids, inverse = np.unique(np.where(thing, panoptic, 0), return_inverse=True)
    inverse = inverse.reshape(panoptic.shape)
    sums = np.bincount(inverse.ravel(), confidence.astype(np.float64).ravel(), minlength=len(ids))
    mean = sums / np.bincount(inverse.ravel(), minlength=len(ids))
    uncertain = (mean < threshold) & (ids != 0)
    crowd = semantic.astype(panoptic.dtype) * panoptic.dtype.type(LABEL_DIVISOR)
    return np.where(uncertain[inverse], crowd, panoptic)


def weigh_semantic(targets: dict[str, torch.Tensor], confidence: np.ndarray, cfg: ConfidenceConfig) -> None:
    """The semantic targets of one pseudo-labelled sample, in place: each pixel's weight times its
    confidence (``weight``), or the pixels under ``pixel_threshold`` ignored (``threshold``)."""
    if cfg.semantic == "weight":
        targets["semantic_weights"] = targets["semantic_weights"] * torch.from_numpy(confidence.astype(np.float32))
    elif cfg.semantic == "threshold":
        below = torch.from_numpy(confidence.astype(np.float32) < cfg.pixel_threshold)
        targets["semantic"] = targets["semantic"].masked_fill(below, IGNORE)
