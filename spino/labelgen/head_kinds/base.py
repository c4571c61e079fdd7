"""What a kind of head learns, as the training loop (spino.labelgen.train) asks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch

from spino.classes import ClassSet

if TYPE_CHECKING:
    from spino.backbone import Backbone
    from spino.labelgen.head_kinds import HeadSettings
    from spino.labelgen.train import HeadTrainer


class HeadKindTraining(ABC):
    """One kind of head: how many channels it predicts, at which size, its target from a panoptic
    label, its loss, and what a fusion reads of it. Built from the head's settings and the class set."""

    def __init__(self, cfg: HeadSettings, class_set: ClassSet):
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

    def labelling_output(self, logits: torch.Tensor) -> torch.Tensor:
        """What a fusion reads of the head's (C, h, w) logits when it labels (by default, the logits)."""
        return logits

    def training_samples(self, samples: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (image, panoptic) samples as this kind learns from them (by default, as they are)."""
        return samples
