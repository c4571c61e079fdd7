"""What an instance method of the panoptic model provides, beside the semantic head all methods share.

A method owns its heads (on the instance decoder's stride-4 map and the adapter's multi-scale maps),
its training targets from a panoptic label map, its loss terms, how the outputs of a mirrored image
are averaged in (flip TTA), and the post-processing of its outputs with the semantic logits into a
panoptic map. Model, sampler, training and prediction talk to this interface only.

A method is one class, registered in ``spino.panoptic.instances.INSTANCE_METHODS`` under its name
(the choice of config ``panoptic.model.instance``) with its settings (config
``panoptic.model.<name>``). It is built from those settings and the model's widths, never from the
whole model config: the model imports the methods, not the reverse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from spino.classes import ClassSet

if TYPE_CHECKING:
    from spino.panoptic.postprocess import PostprocessConfig
    from spino.panoptic.targets import TargetConfig


@dataclass(frozen=True)
class Widths:
    """The model's channel counts a method's heads build on."""

    adapter: int  # the adapter's maps at strides 4-32 (config panoptic.model.channels)
    decoder: int  # the instance decoder's stride-4 map
    head: int  # the hidden width of a head


class InstanceMethod(ABC):
    """One way of finding instances (``panoptic.model.instance``); holds its settings and the model's
    widths only, so that it pickles into DataLoader workers."""

    loss_terms: ClassVar[tuple[str, ...]]  # the columns of losses.csv after loss and semantic

    def __init__(self, cfg: Any, widths: Widths):
        self.cfg, self.widths = cfg, widths

    @abstractmethod
    def heads(self, num_classes: int) -> dict[str, nn.Module]:
        """The method's head modules by attribute name (registered on the model under these names)."""

    @abstractmethod
    def forward(
        self, heads: dict[str, nn.Module], decoded: torch.Tensor, maps: list[torch.Tensor], size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """The heads' outputs for a batch: from the instance decoder's stride-4 map ``decoded``, the
        adapter's maps at strides 4-32 and the input ``size``."""

    @abstractmethod
    def targets(self, panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig) -> dict[str, torch.Tensor]:
        """Training targets of one label map at the input size: ``semantic`` and ``semantic_weights``
        (shared with the semantic head) and the method's own."""

    @abstractmethod
    def losses(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The method's loss terms (``loss_terms``), unweighted."""

    @abstractmethod
    def loss_weights(self) -> dict[str, float]:
        """The factor of each loss term in the total loss."""

    @abstractmethod
    def flip_average(
        self, outputs: dict[str, torch.Tensor], mirrored: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The instance outputs averaged with those of the mirrored image, mapped back."""

    @abstractmethod
    def scored_panoptic(
        self,
        semantic: torch.Tensor,
        outputs: dict[str, torch.Tensor],
        class_set: ClassSet,
        post: PostprocessConfig,
        size: tuple[int, int],
    ) -> tuple[torch.Tensor, dict[int, float]]:
        """The panoptic map (spino encoding, int64) of one image at ``size`` from its semantic logits
        (1, C, h, w) and its instance outputs (batch of one), and the method's confidence of each
        thing instance (panoptic id -> score; empty for a method that scores none)."""

    def panoptic(self, *args) -> torch.Tensor:
        """``scored_panoptic``'s map alone (what ``spino predict`` stores)."""
        return self.scored_panoptic(*args)[0]
