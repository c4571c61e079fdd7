"""What every labeller gives: a pseudo-label per image, a class set, and seconds per stage."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from spino.classes import ClassSet


@dataclass
class PseudoLabel:
    semantic: np.ndarray  # uint8 train ids, 255 ignore (after fusion dropped small blobs)
    panoptic: np.ndarray  # uint32, spino.encoding
    confidence: np.ndarray  # float16, mean softmax probability of the chosen class
    interior: np.ndarray | None = None  # bool, mean boundary probability > threshold (heads only)
    embeddings: np.ndarray | None = None  # (D, h, w) float16 at the embedding head's resolution (fusion: embedding)


class Labeller(ABC):
    """What labels a store's images: a class set, a device, and seconds spent per stage."""

    class_set: ClassSet

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.timings: dict[str, float] = defaultdict(float)

    @contextmanager
    def timed(self, stage: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[stage] += time.perf_counter() - start

    @abstractmethod
    def __call__(self, image: np.ndarray) -> PseudoLabel:
        """The pseudo-label of one RGB image."""
