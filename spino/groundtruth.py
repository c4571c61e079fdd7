"""Ground-truth label stores: the dataset's labels, decoded once into spino's encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.data.base import Dataset
from spino.data.io import image_size
from spino.data.manifest import Entry
from spino.encoding import semantic_of
from spino.errors import InputError
from spino.progress import progress
from spino.store import LabelStore, create_store


def create_store_for(
    path: str | Path,
    entries: list[Entry],
    size: tuple[int, int],
    class_set: ClassSet,
    images_per_shard: int,
    kind: str,
    with_confidence: bool = False,
    with_runner_up: bool = False,
) -> LabelStore:
    """An empty store for these manifest entries at the working size (H, W); kind says what it holds.
    Each image's own size is recorded, so exports can give labels back at it."""
    if not entries:
        raise InputError(f"{path}: no images selected for this store")
    height, width = size
    return create_store(
        path,
        [e.image_id for e in entries],
        height,
        width,
        class_set,
        images_per_shard,
        with_confidence=with_confidence,
        with_runner_up=with_runner_up,
        extra_attrs={
            "kind": kind,
            "image_paths": [e.image for e in entries],
            "image_sizes": [[e.height, e.width] for e in entries],
        },
    )


def write_ground_truth_shard(store: LabelStore, dataset: Dataset, entries: dict[str, Entry], index: int) -> None:
    """Decode and check the labels of one shard's images and write the shard."""
    shard = store.shard(index)
    pans = []
    for image_id in progress(store.image_ids[shard.start : shard.stop], f"ground truth shard {index}"):
        entry = entries[image_id]
        image_size(entry.image)  # the image its labels belong to is still there and readable
        pans.append(store.fit_labels(dataset.read_panoptic(entry.record)))
    panoptic = np.stack(pans)
    store.write_shard(index, semantic_of(panoptic), panoptic)
