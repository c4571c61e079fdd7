"""The boundary head (SPINO): one logit per pixel, 1 inside a segment, 0 on its boundary (BCE)."""

from __future__ import annotations

import numpy as np
import torch

from spino.labelgen.boundaries import boundary_ids, interior
from spino.labelgen.head_kinds.base import HeadKindTraining
from spino.losses import boundary_loss


class BoundaryHead(HeadKindTraining):
    def out_channels(self) -> int:
        return 1

    def target(self, label: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(interior(boundary_ids(label, self.class_set)))

    def loss(self, trainer, crop, logits, target, rng) -> torch.Tensor:
        return boundary_loss(logits[:, 0], target[None])
