"""Mixed batches for the panoptic model: one ground-truth sample of the k annotated images per
batch, the rest pseudo-labels, read from the label stores.

Every batch is a pure function of (seed, step, rank): which images, flips and jitter. A resumed
run therefore sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spino.classes import ClassSet
from spino.data.io import read_image
from spino.errors import InputError
from spino.panoptic.targets import TargetConfig, panoptic_targets
from spino.store import LabelStore
from spino.transforms import color_jitter, image_tensor, resize_nearest


@dataclass(frozen=True)
class Sample:
    image_id: str
    image_path: str
    store: LabelStore
    index: int


def samples_from(store: LabelStore, image_ids: list[str]) -> list[Sample]:
    """Samples for the given ids of a complete store, with the image paths the store records."""
    store.require_complete()
    paths = store.meta["image_paths"]
    return [Sample(i, paths[store.index_of(i)], store, store.index_of(i)) for i in image_ids]


def load(sample: Sample, size: tuple[int, int], flip: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """Image (3, H, W) float in 0..255 and panoptic label resized to ``size`` (label: nearest)."""
    image = read_image(sample.image_path)
    panoptic = sample.store.panoptic(sample.index)
    sample.store.check_size(image.shape, sample.image_path)
    img = image_tensor(image, size)
    label = resize_nearest(panoptic, size)
    if flip:
        img, label = img.flip(-1), np.ascontiguousarray(label[:, ::-1])
    return img, label


class MixedBatches:
    def __init__(
        self,
        ground_truth: list[Sample],
        pseudo: list[Sample],
        class_set: ClassSet,
        size: tuple[int, int],
        batch_size: int,
        seed: int,
        jitter: float,
        targets: TargetConfig,
    ):
        if not ground_truth:
            raise InputError("mixed batches need at least one ground-truth sample")
        if batch_size > 1 and not pseudo:
            raise InputError("mixed batches need pseudo-labelled samples for the rest of each batch")
        self.ground_truth, self.pseudo = ground_truth, pseudo
        self.class_set, self.size, self.batch_size = class_set, size, batch_size
        self.seed, self.jitter, self.targets = seed, jitter, targets

    def batch(self, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        chosen = [self.ground_truth[rng.integers(len(self.ground_truth))]]
        chosen += [self.pseudo[i] for i in rng.integers(len(self.pseudo), size=self.batch_size - 1)]
        images, targets = [], []
        for sample in chosen:
            img, label = load(sample, self.size, flip=bool(rng.random() < 0.5))
            images.append(color_jitter(img, rng, self.jitter))
            targets.append(panoptic_targets(label, self.class_set, self.targets))
        batch = {key: torch.stack([t[key] for t in targets]) for key in targets[0]}
        batch["image"] = torch.stack(images)
        return batch
