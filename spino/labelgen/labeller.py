"""What every labeller gives (a pseudo-label per image, a class set, and seconds per stage), and the
labeller a pseudo-label job runs: the trained heads, or the PriMaPs prototypes."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spino.classes import ClassSet
from spino.errors import InputError


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
    def __call__(self, image: np.ndarray, runner_up: bool = False) -> PseudoLabel:
        """The pseudo-label of one RGB image; with ``runner_up`` (a labeller that ``gives_runner_up``)
        also each pixel's second class, which costs a pass over every class's probabilities."""


def open_labeller(
    primaps: Path | None,
    semantic_head: Path | None,
    boundary_head: Path | None,
    settings: dict | None,
    embedding_head: Path | None,
    device: str,
) -> Labeller:
    """PriMaPs prototypes when given (label-free), else the heads with the pseudo-label settings."""
    if primaps:
        from spino.labelgen.primaps import load_primaps

        return load_primaps(primaps, device)
    if not (semantic_head and boundary_head and settings is not None):
        raise InputError("pseudo-label needs --primaps, or --semantic-head, --boundary-head and --settings")
    from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig

    cfg = PseudoLabelConfig.from_dict(settings)
    return LabelGenerator(semantic_head, boundary_head, cfg, device, embedding_head, settings.get(cfg.fusion))
