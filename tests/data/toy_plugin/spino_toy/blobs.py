"""The instance method ``blobs``: instances are the 4-connected parts of each thing class where a
learned objectness is above ``threshold`` (config ``panoptic.model.blobs``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, semantic_of
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.layers import head
from spino.panoptic.targets import semantic_targets


class Blobs(InstanceMethod):
    loss_terms = ("objectness",)

    def heads(self, num_classes: int) -> dict[str, nn.Module]:
        return {"objectness_head": head(self.widths.decoder, self.widths.head, 1)}

    def forward(self, heads, decoded, maps, size):
        logits = heads["objectness_head"](decoded)
        return {"objectness": F.interpolate(logits, size=size, mode="bilinear", align_corners=False)}

    def targets(self, panoptic, class_set, cfg):
        targets = semantic_targets(panoptic, class_set, cfg)
        thing = class_set.thing_mask()[semantic_of(panoptic).clip(0, 255)] & (panoptic % LABEL_DIVISOR > 0)
        return {**targets, "objectness": torch.from_numpy(thing.astype(np.float32))[None]}

    def losses(self, outputs, batch):
        return {"objectness": F.binary_cross_entropy_with_logits(outputs["objectness"].float(), batch["objectness"])}

    def loss_weights(self):
        return {"objectness": self.cfg.weight}

    def flip_average(self, outputs, mirrored):
        return {"objectness": (outputs["objectness"] + mirrored["objectness"].flip(-1)) / 2}

    def scored_panoptic(self, semantic, outputs, class_set, post, size):
        semantic = F.interpolate(semantic, size=tuple(size), mode="bilinear", align_corners=False)[0].argmax(0)
        objectness = F.interpolate(outputs["objectness"], size=tuple(size), mode="bilinear", align_corners=False)
        labels = semantic.cpu().numpy()
        panoptic = labels.astype(np.int64) * LABEL_DIVISOR
        for cls in class_set.thing_ids:
            mask = (labels == cls) & (objectness[0, 0].cpu().numpy() > self.cfg.threshold)
            parts, _ = ndimage.label(mask)
            panoptic[labels == cls] = IGNORE_PANOPTIC
            panoptic[mask] = cls * LABEL_DIVISOR + parts[mask]
        return torch.from_numpy(panoptic), {}
