"""The solov2 instance method (the package's docstring says what it is)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spino.classes import ClassSet
from spino.errors import InputError
from spino.losses import dice_loss, focal_loss
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.instances.solov2.detection import detect, flip_cells
from spino.panoptic.instances.solov2.fusion import fuse_efficientps, paste_instances
from spino.panoptic.instances.solov2.heads import Solov2Heads
from spino.panoptic.instances.solov2.settings import Solov2Config
from spino.panoptic.instances.solov2.targets import solov2_targets
from spino.panoptic.postprocess import drop_small_stuff, upsampled_argmax
from spino.panoptic.targets import TargetConfig, semantic_targets


class Solov2(InstanceMethod):
    loss_terms = ("category", "mask")
    cfg: Solov2Config

    def heads(self, num_classes: int) -> dict[str, nn.Module]:
        if len(self.cfg.grids) != len(self.cfg.strides) or len(self.cfg.grids) != len(self.cfg.scale_ranges):
            raise InputError("panoptic.model.solov2: grids, strides and scale_ranges need one entry per level")
        return {"solov2_heads": Solov2Heads(self.cfg, self.widths.adapter, self.widths.decoder, num_classes)}

    def forward(self, heads, decoded, maps, size):
        return heads["solov2_heads"](decoded, maps)

    def targets(self, panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig) -> dict[str, torch.Tensor]:
        return {**semantic_targets(panoptic, class_set, cfg), **solov2_targets(panoptic, class_set, self.cfg)}

    def losses(self, outputs, batch):
        category = outputs["category"].float()
        b, n, c = category.shape
        cat = focal_loss(
            category.reshape(b * n, c),
            batch["solo_category"].reshape(-1),
            batch["solo_category_weights"].reshape(-1),
            self.cfg.focal_alpha,
            self.cfg.focal_gamma,
        )
        kernels, features = outputs["kernel"].float(), outputs["mask_features"].float()
        logits, masks, weights = [], [], []
        for image in range(b):  # per image: gathers without repeated indices keep the backward pass deterministic
            cells = (batch["solo_instance"][image] >= 0).nonzero()[:, 0]
            if len(cells):
                logits.append(torch.einsum("pe,ehw->phw", kernels[image, cells], features[image]))
                masks.append(batch["solo_masks"][image, batch["solo_instance"][image, cells]])
                weights.append(batch["solo_mask_weights"][image].expand(len(cells), -1, -1))
        if not logits:  # no instance in the batch: a zero that keeps every head in the graph (DDP)
            return {"category": cat, "mask": 0.0 * kernels.sum() + 0.0 * features.sum()}
        return {"category": cat, "mask": dice_loss(torch.cat(logits), torch.cat(masks), torch.cat(weights))}

    def loss_weights(self) -> dict[str, float]:
        return {"category": 1.0, "mask": self.cfg.mask_weight}

    def flip_average(self, outputs, mirrored):
        """Category scores of mirrored cells averaged in (as logits of the mean probability); kernels
        and mask features stay the image's own (a mirrored kernel belongs to mirrored features)."""
        mean = (outputs["category"].sigmoid() + flip_cells(mirrored["category"], self.cfg.grids).sigmoid()) / 2
        return {**outputs, "category": torch.logit(mean, eps=1e-6)}

    def scored_panoptic(self, semantic, outputs, class_set, post, size):
        """Instances detected at ``size``, fused with the semantic logits there; each instance's score
        is its detection's (category score x maskness, after Matrix NMS)."""
        instances = detect(outputs, class_set, self.cfg, tuple(size))
        if self.cfg.fusion == "efficientps":
            semantic = F.interpolate(semantic, size=tuple(size), mode="bilinear", align_corners=False)[0]
            labels = semantic.argmax(0)
            pan, scores = fuse_efficientps(semantic, labels, instances, class_set)
        else:  # pasting needs only the argmax: not every class's logits at full size (as centre/offset)
            labels = upsampled_argmax(semantic, tuple(size))
            pan, scores = paste_instances(labels, instances, class_set, self.cfg.overlap_threshold)
        return drop_small_stuff(pan, labels, class_set, post.stuff_area), scores
