"""Mixed batches for the panoptic model: one ground-truth sample of the k annotated images per
global batch, the rest pseudo-labels, read from the label stores by DataLoader workers.

Training reads items (step, slot): slot ``s`` of the global batch at ``step``. Which sample a slot
holds depends on (seed, step) only, its augmentation on (seed, step, slot). A batch is therefore the
same whichever worker builds it and whether the run was resumed, and with several processes rank
``r`` trains on slots ``[r*b, (r+1)*b)`` of the very global batch one process would train on.
Items are built on one thread, as in a DataLoader worker: resizing and means in PyTorch round
differently with another thread count, and a batch must not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from spino.classes import ClassSet
from spino.config import section
from spino.data.io import image_size, resize_nearest
from spino.errors import InputError
from spino.panoptic.confidence import ConfidenceConfig, uncertain_instances_as_crowd, weigh_semantic
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.targets import TargetConfig
from spino.store import FILL_VALUES, LabelStore
from spino.transforms import color_jitter, image_tensor

# Crops that reach past a scaled-down image are filled with the ImageNet mean colour (zero after the
# backbone's normalisation) and void labels (no loss), as Panoptic-DeepLab pads.
PAD_COLOUR = (123.675, 116.28, 103.53)


@dataclass(frozen=True)
class Sample:
    image_id: str
    image_path: str
    store: LabelStore
    index: int


def samples_from(store: LabelStore, image_ids: list[str]) -> list[Sample]:
    """Samples for the given ids of a complete store, with the image paths the store records.

    Each image's header is read here, so that a missing or unreadable image stops training before
    it starts, with its name (not later, from inside a DataLoader worker).
    """
    store.require_complete()
    paths = store.meta["image_paths"]
    samples = [Sample(i, paths[store.index_of(i)], store, store.index_of(i)) for i in image_ids]
    for sample in samples:
        image_size(sample.image_path)
    return samples


@section("panoptic.train.augment")
class Augment:
    """Training augmentation. SPINO resizes the whole image to the input size (scale 1 to 1) with
    flips and colour jitter; Panoptic-DeepLab scales by 0.5 to 2 and crops the input size."""

    flip: bool
    color_jitter: float
    min_scale: float  # of the input size
    max_scale: float


def load(sample: Sample, size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """Image (3, H, W) float in 0..255 and panoptic label resized to ``size`` (label: nearest)."""
    image = sample.store.read_image(sample.image_path)
    panoptic = sample.store.panoptic(sample.index)
    return image_tensor(image, size), resize_nearest(panoptic, size)


def augmented(
    sample: Sample, size: tuple[int, int], augment: Augment, rng: np.random.Generator, arrays: tuple[str, ...] = ()
) -> tuple[torch.Tensor, np.ndarray, dict[str, np.ndarray]]:
    """``sample`` at a random scale of ``size``, cropped (or padded) to ``size``, maybe flipped, jittered:
    image, panoptic label, and the store's ``arrays`` of the label (confidence, ...), the maps moved
    with the image (padding: void, and each array's fill value)."""
    scale = (
        float(rng.uniform(augment.min_scale, augment.max_scale))
        if augment.max_scale > augment.min_scale
        else augment.min_scale
    )
    h, w = size
    scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    image, label = load(sample, scaled)
    maps = {"panoptic": label} | {
        name: resize_nearest(sample.store.image_array(name, sample.index), scaled) for name in arrays
    }
    if scaled != size:
        y0 = int(rng.integers(0, max(0, scaled[0] - h) + 1))
        x0 = int(rng.integers(0, max(0, scaled[1] - w) + 1))
        image, maps = image[:, y0 : y0 + h, x0 : x0 + w], {k: m[y0 : y0 + h, x0 : x0 + w] for k, m in maps.items()}
        if image.shape[1:] != size:
            padded = torch.tensor(PAD_COLOUR).view(3, 1, 1).repeat(1, h, w)
            padded[:, : image.shape[1], : image.shape[2]] = image
            image, maps = padded, {k: padded_map(m, size, FILL_VALUES[k]) for k, m in maps.items()}
    if augment.flip and rng.random() < 0.5:
        image, maps = image.flip(-1), {k: np.ascontiguousarray(m[:, ::-1]) for k, m in maps.items()}
    label = maps.pop("panoptic")
    return color_jitter(image, rng, augment.color_jitter), label, maps


def padded_map(label: np.ndarray, size: tuple[int, int], fill: int) -> np.ndarray:
    """``label`` in the top left of a ``size`` canvas of ``fill`` (void, no confidence)."""
    canvas = np.full(size, fill, label.dtype)
    canvas[: label.shape[0], : label.shape[1]] = label
    return canvas


class MixedBatchData(Dataset):
    """Item ``(step, slot)``: one training sample with its targets, a pure function of (seed, step, slot)."""

    def __init__(
        self,
        ground_truth: list[Sample],
        pseudo: list[Sample],
        class_set: ClassSet,
        size: tuple[int, int],
        batch_size: int,
        seed: int,
        augment: Augment,
        targets: TargetConfig,
        method: InstanceMethod,
        confidence: ConfidenceConfig | None = None,
    ):
        if not ground_truth:
            raise InputError("mixed batches need at least one ground-truth sample")
        if batch_size > 1 and not pseudo:
            raise InputError("mixed batches need pseudo-labelled samples for the rest of each batch")
        self.ground_truth, self.pseudo = ground_truth, pseudo
        self.class_set, self.size, self.batch_size = class_set, tuple(size), batch_size
        self.seed, self.augment, self.targets = seed, augment, targets
        self.method = method  # whose targets each item carries
        self.confidence = confidence or ConfidenceConfig()  # the schema's defaults (every pixel and instance counts)

    def chosen(self, step: int) -> list[Sample]:
        """The samples of the global batch at ``step``: ground truth in slot 0, pseudo-labels after."""
        rng = np.random.default_rng([self.seed, step])
        picks = rng.integers(len(self.pseudo), size=self.batch_size - 1) if self.batch_size > 1 else []
        return [self.ground_truth[rng.integers(len(self.ground_truth))]] + [self.pseudo[i] for i in picks]

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        step, slot = item
        rng = np.random.default_rng([self.seed, step, slot, 1])
        sample = self.chosen(step)[slot]
        weighed = slot > 0 and self.confidence.used and sample.store.has_confidence  # slot 0: ground truth
        with one_thread():
            arrays = self.confidence.arrays if weighed else ()
            image, label, maps = augmented(sample, self.size, self.augment, rng, arrays)
            if not weighed:
                return {
                    "image": image,
                    **self.confidence.certain(self.method.targets(label, self.class_set, self.targets)),
                }
            if self.confidence.instance_threshold > 0:
                label = uncertain_instances_as_crowd(
                    label, maps["confidence"], self.class_set, self.confidence.instance_threshold
                )
            targets = self.method.targets(label, self.class_set, self.targets)
            weigh_semantic(targets, maps, self.confidence)
            return {"image": image, **targets}

    def batch(self, step: int, slots: range) -> dict[str, torch.Tensor]:
        """The slots of one step's batch, collated as the DataLoader collates them."""
        return default_collate([self[(step, s)] for s in slots])


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class StepSlots(Sampler):
    """(step, slot) for every step in [start, stop) and every slot this process trains on."""

    def __init__(self, start: int, stop: int, slots: range):
        self.start, self.stop, self.slots = start, stop, slots

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((step, slot) for step in range(self.start, self.stop) for slot in self.slots)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * len(self.slots)


def rank_slots(batch_size: int, rank: int, world: int) -> range:
    """The slots of the global batch that process ``rank`` of ``world`` trains on."""
    if batch_size % world:
        raise InputError(f"panoptic.train.batch_size {batch_size} must be a multiple of the number of GPUs ({world})")
    local = batch_size // world
    return range(rank * local, (rank + 1) * local)


def batch_loader(
    data: MixedBatchData, start: int, stop: int, slots: range, workers: int, pin_memory: bool
) -> DataLoader:
    """Batches of ``slots`` for steps [start, stop), built by ``workers`` processes (0: in this one)."""
    return DataLoader(
        data,
        batch_size=len(slots),
        sampler=StepSlots(start, stop, slots),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
    )
