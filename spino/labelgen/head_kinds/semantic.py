"""The semantic head (SPINO): class logits at the input size, the hardest pixels' cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

from spino.encoding import semantic_of
from spino.labelgen.head_kinds.base import HeadKindTraining
from spino.losses import top_k_cross_entropy


class SemanticHead(HeadKindTraining):
    def out_channels(self) -> int:
        return self.class_set.num_classes

    def output_size(self, backbone, feed: tuple[int, int]) -> tuple[int, int]:
        return feed

    def target(self, label: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(semantic_of(label).astype(np.int64))

    def loss(self, trainer, crop, logits, target, rng) -> torch.Tensor:
        return top_k_cross_entropy(logits, target[None], self.cfg.top_k)
