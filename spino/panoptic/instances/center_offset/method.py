"""The center_offset instance method (the package's docstring says what it is)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spino.classes import ClassSet
from spino.losses import weighted_mean
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.instances.center_offset.grouping import scored_panoptic_from_outputs
from spino.panoptic.instances.center_offset.settings import CenterOffsetConfig
from spino.panoptic.instances.center_offset.targets import panoptic_targets
from spino.panoptic.layers import head
from spino.panoptic.postprocess import upsampled_argmax
from spino.panoptic.targets import TargetConfig

X_NEGATED = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)  # a mirror reverses the x component of an offset


class CenterOffset(InstanceMethod):
    loss_terms = ("center", "offset")
    cfg: CenterOffsetConfig

    def heads(self, num_classes: int) -> dict[str, nn.Module]:
        w = self.widths
        return {"center_head": head(w.decoder, w.head, 1), "offset_head": head(w.decoder, w.head, 2)}

    def forward(self, heads, decoded, maps, size):
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        return {
            "center": up(heads["center_head"](decoded)),
            "offset": up(heads["offset_head"](decoded)) * 4.0,  # offsets are predicted in stride-4 units
        }

    def targets(self, panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig) -> dict[str, torch.Tensor]:
        return panoptic_targets(panoptic, class_set, cfg, self.cfg.sigma)

    def losses(self, outputs, batch):
        center = weighted_mean((outputs["center"].float() - batch["center"]) ** 2, batch["center_weights"])
        offset = weighted_mean(
            (outputs["offset"].float() - batch["offset"]).abs(), batch["offset_weights"].expand_as(batch["offset"])
        )
        return {"center": center, "offset": offset}

    def loss_weights(self) -> dict[str, float]:
        return {"center": self.cfg.center_weight, "offset": self.cfg.offset_weight}

    def flip_average(self, outputs, mirrored):
        return {
            "center": (outputs["center"] + mirrored["center"].flip(-1)) / 2,
            "offset": (outputs["offset"] + mirrored["offset"].flip(-1) * X_NEGATED.to(outputs["offset"].device)) / 2,
        }

    def scored_panoptic(self, semantic, outputs, class_set, post, size):
        """As detectron2's Panoptic-DeepLab: semantic logits, centre heatmap and offsets (scaled to the
        new pixel size) are resized bilinearly to ``size`` first, and centres and grouping are found
        there, so boundaries and small instances keep the output resolution. An instance's score is
        the heatmap's peak over its pixels: the height of the centre that gathered it."""
        center, offset = outputs["center"], outputs["offset"]
        labels = upsampled_argmax(semantic, tuple(size))  # the argmax of the resized logits, cheaper
        if tuple(size) != tuple(center.shape[-2:]):
            scale = torch.tensor([size[0] / offset.shape[-2], size[1] / offset.shape[-1]], device=offset.device)
            center, offset = (
                F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False) for t in (center, offset)
            )
            offset = offset * scale.view(1, 2, 1, 1)
        return scored_panoptic_from_outputs(labels, center[0], offset[0], class_set, self.cfg, post.stuff_area)
