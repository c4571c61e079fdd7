"""The head kind ``thing``: one logit per pixel, thing or not (BCE, thing pixels weighted by
``pos_weight``); what the fusion reads of it is the probability."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spino.encoding import semantic_of
from spino.labelgen.head_kinds.base import HeadKindTraining


class ThingHead(HeadKindTraining):
    def out_channels(self) -> int:
        return 1

    def target(self, label: np.ndarray) -> torch.Tensor:
        semantic = semantic_of(label)
        thing = self.class_set.thing_mask()[np.where(semantic == 255, 0, semantic)] & (semantic != 255)
        return torch.from_numpy(thing.astype(np.float32))

    def loss(self, trainer, crop, logits, target, rng) -> torch.Tensor:
        weight = torch.tensor(self.cfg.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits[:, 0], target[None], pos_weight=weight)

    def labelling_output(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()
