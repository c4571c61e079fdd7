"""What a kind of head learns, as the training loop (spino.labelgen.train) asks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch

from spino.classes import ClassSet

if TYPE_CHECKING:
    from spino.backbone import Backbone
    from spino.labelgen.train import HeadConfig, HeadTrainer


class HeadKindTraining(ABC):
    """One kind of head: how many channels it predicts, at which size, its target from a panoptic
    label and its loss. Built from the head's settings and the class set."""

    def __init__(self, cfg: HeadConfig, class_set: ClassSet):
        self.cfg, self.class_set = cfg, class_set

    @abstractmethod
    def out_channels(self) -> int:
        """Output channels of the head's MLP."""

    def output_size(self, backbone: Backbone, feed: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of its output for an input of ``feed``: by default ``upsample`` x the feature map."""
        return feed[0] // backbone.stride * self.cfg.upsample, feed[1] // backbone.stride * self.cfg.upsample

    @abstractmethod
    def target(self, label: np.ndarray) -> torch.Tensor:
        """Its target from a panoptic label already at the output size."""

    @abstractmethod
    def loss(
        self,
        trainer: HeadTrainer,
        crop: torch.Tensor,
        logits: torch.Tensor,
        target: torch.Tensor,
        rng: np.random.Generator,
    ) -> torch.Tensor:
        """The loss of ``logits`` (1, K, H, W) for the input ``crop`` (1, 3, h, w) against ``target``."""

    def training_samples(self, samples: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (image, panoptic) samples as this kind learns from them (by default, as they are)."""
        return samples
