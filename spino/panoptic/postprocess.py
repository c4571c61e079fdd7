"""Post-processing every instance method shares: its settings (stuff area, flip TTA) and the removal
of small stuff regions. Each method's own grouping lives with the method (spino.panoptic.instances)."""

from __future__ import annotations

import torch

from spino.classes import ClassSet
from spino.config import section
from spino.encoding import IGNORE_PANOPTIC


@section("panoptic.train.postprocess")
class PostprocessConfig:
    stuff_area: int  # a stuff class covering fewer pixels of the image becomes void (detectron2: 2048)
    flip: bool  # test-time augmentation: average in the mirrored image's outputs (twice the model passes)


def drop_small_stuff(
    panoptic: torch.Tensor, semantic: torch.Tensor, class_set: ClassSet, min_area: int
) -> torch.Tensor:
    """Void where a stuff class covers fewer than ``min_area`` pixels of the image (Panoptic-DeepLab's stuff_area)."""
    if min_area <= 0:
        return panoptic
    stuff_lut = ~torch.as_tensor(class_set.thing_mask(), device=semantic.device)
    stuff_lut[class_set.num_classes :] = False
    labels = semantic.long().clamp(0, 255)
    small = stuff_lut & (torch.bincount(labels.flatten(), minlength=256) < min_area)  # per class: one pass
    return panoptic.masked_fill_(small[labels], IGNORE_PANOPTIC)
