"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.encoding import semantic_of
from spino.store import LabelStore, create_store


def store_from_maps(
    path: Path, ids: list[str], maps: list[np.ndarray], class_set: ClassSet, per_shard: int = 3, image_paths: list[str] | None = None
) -> LabelStore:
    """A complete store holding the given panoptic maps (and the paths of their images, if given)."""
    h, w = maps[0].shape
    store = create_store(path, ids, h, w, class_set, per_shard, extra_attrs={"image_paths": image_paths} if image_paths else None)
    for i in range(store.num_shards):
        shard = store.shard(i)
        pan = np.stack(maps[shard.start : shard.stop])
        store.write_shard(i, semantic_of(pan), pan)
    store.finalize()
    return store
