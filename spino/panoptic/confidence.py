"""The student weighs what its teacher is sure of (config ``panoptic.train.confidence``).

A pseudo-label store holds each pixel's confidence: the mean softmax probability of its class over
the label generator's scales. The semantic loss can weigh each pixel by it (as DAFormer weighs its
pseudo-labels by their quality), drop the pixels under a threshold (as ST++ and UniMatch do), or,
where the store also holds each pixel's runner-up class (pseudo_labels.top2), learn the teacher's
two most likely classes with their probabilities renormalised (a soft target: its doubt, not its pick);
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
    semantic: str  # none | weight | threshold | soft
    pixel_threshold: float  # semantic: threshold
    instance_threshold: float  # 0: every instance counts

    @property
    def used(self) -> bool:
        """Whether training reads the stores' confidence at all (off: the batches of older spino)."""
        return self.semantic != "none" or self.instance_threshold > 0

    @property
    def arrays(self) -> tuple[str, ...]:
        """The store arrays a pseudo-labelled sample is read with."""
        return ("confidence",) + (("runner_up", "runner_up_confidence") if self.semantic == "soft" else ())

    def certain(self, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The targets of a sample whose labels are certain (ground truth, or a store without confidence),
        with the soft target's keys (no runner-up) where the batch's other samples have them."""
        if self.semantic == "soft":
            targets["semantic_runner_up"] = torch.full_like(targets["semantic"], IGNORE)
            targets["semantic_runner_up_share"] = torch.zeros(targets["semantic"].shape)
        return targets


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


def weigh_semantic(targets: dict[str, torch.Tensor], maps: dict[str, np.ndarray], cfg: ConfidenceConfig) -> None:
    """The semantic targets of one pseudo-labelled sample, in place: each pixel's weight times its
    confidence (``weight``), the pixels under ``pixel_threshold`` ignored (``threshold``), or the
    runner-up class with its share p2 / (p1 + p2) of the target beside the chosen class (``soft``)."""
    confidence = maps["confidence"].astype(np.float32)
    if cfg.semantic == "weight":
        targets["semantic_weights"] = targets["semantic_weights"] * torch.from_numpy(confidence)
    elif cfg.semantic == "threshold":
        below = torch.from_numpy(confidence < cfg.pixel_threshold)
        targets["semantic"] = targets["semantic"].masked_fill(below, IGNORE)
    elif cfg.semantic == "soft":
        semantic = targets["semantic"].numpy()
        runner_up = maps["runner_up"].astype(np.int64)
        second = maps["runner_up_confidence"].astype(np.float32) / 255
        soft = (semantic != IGNORE) & (runner_up != IGNORE) & (runner_up != semantic) & (confidence + second > 0)
        share = np.where(soft, second / np.maximum(confidence + second, 1e-6), 0).astype(np.float32)
        targets["semantic_runner_up"] = torch.from_numpy(np.where(soft, runner_up, IGNORE))
        targets["semantic_runner_up_share"] = torch.from_numpy(share)
