"""What every labeller gives (a pseudo-label per image, a class set, and seconds per stage); which
labellers there are is spino.labelgen.labellers."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    runner_up: np.ndarray | None = None  # uint8, the second most likely class (heads only)
    runner_up_confidence: np.ndarray | None = None  # float16, its mean softmax probability


class Labeller(ABC):
    """What labels a store's images: a class set, a device, and seconds spent per stage."""

    class_set: ClassSet
    gives_runner_up = False  # whether its labels carry each pixel's second class (pseudo_labels.top2)

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.timings: dict[str, float] = defaultdict(float)
        self._timings_lock = threading.Lock()  # stages may be timed from two threads (spino.labelgen.shards)

    @contextmanager
    def timed(self, stage: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        with self._timings_lock:
            self.timings[stage] += time.perf_counter() - start

    @classmethod
    @abstractmethod
    def open(cls, inputs: Mapping[str, Path], settings: dict, device: str) -> Labeller:
        """The labeller from its input files (named as its LABELLERS entry's ``inputs`` give them) and
        config ``pseudo_labels``, on ``device``."""

    @abstractmethod
    def __call__(self, image: np.ndarray, runner_up: bool = False) -> PseudoLabel:
        """The pseudo-label of one RGB image; with ``runner_up`` (a labeller that ``gives_runner_up``)
        also each pixel's second class, which costs a pass over every class's probabilities."""

    def predict(self, image: np.ndarray, runner_up: bool = False) -> Any:
        """The device's part of labelling one image, for ``finish``: a labeller that splits its work
        so lets a GPU go on to the next image while the CPU fuses this one (by default: all of it)."""
        return self(image, runner_up)

    def finish(self, predicted: Any) -> PseudoLabel:
        """The CPU's part of labelling, on what ``predict`` gave (by default: nothing left to do)."""
        return predicted
