"""A pseudo-label job's output: one shard of the store, and for fusion: embedding its SPOCO HDF5 file."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from spino.data.io import atomic_path
from spino.errors import InputError
from spino.labelgen.labeller import Labeller
from spino.progress import progress
from spino.store import LabelStore


def write_pseudo_label_shard(
    store: LabelStore,
    generator: Labeller,
    image_paths: dict[str, str],
    index: int,
    spoco: str | Path | None = None,
    overlap: bool | None = None,
) -> dict:
    """Label the images of one shard, write the shard whole, and return per-stage timings. ``spoco``:
    also write the shard's images, embeddings and panoptic maps there (HDF5, fusion: embedding).

    The next image is read while one is labelled; with ``overlap`` (default: on a GPU) each image's
    fusion also runs on a thread while the device predicts the next, so that the GPU does not wait
    on the CPU's work (on the CPU, whose cores the workflow gives to jobs one each, it would only
    compete with the prediction). The labels are the same either way."""
    if store.class_set.names != generator.class_set.names:
        raise InputError(f"{store.path}: class set differs from the labeller's ({generator.class_set.name})")
    shard = store.shard(index)
    ids = store.image_ids[shard.start : shard.stop]
    if store.has_runner_up and not generator.gives_runner_up:
        raise InputError(f"{store.path}: pseudo_labels.top2 needs the trained heads' class probabilities")
    overlap = generator.device.type == "cuda" if overlap is None else overlap
    labels, images = [], []
    with ThreadPoolExecutor(max_workers=2) as pool:
        fusing = None  # the previous image's finish, running while this one is predicted
        images_ahead = _read_ahead(pool, store, generator, [image_paths[i] for i in ids])
        for image in progress(images_ahead, f"pseudo-label shard {index}", total=len(ids)):
            predicted = generator.predict(image, runner_up=store.has_runner_up)
            if not overlap:
                labels.append(generator.finish(predicted))
            else:
                if fusing is not None:
                    labels.append(fusing.result())
                fusing = pool.submit(generator.finish, predicted)
            if spoco is not None:
                images.append(image)
        if fusing is not None:
            labels.append(fusing.result())
    with generator.timed("store_write"):
        fields = ("semantic", "panoptic", "confidence")
        fields += ("runner_up", "runner_up_confidence") if store.has_runner_up else ()  # pseudo_labels.top2
        store.write_shard(index, **{name: np.stack([getattr(p, name) for p in labels]) for name in fields})
        if spoco is not None:
            if any(p.embeddings is None for p in labels):
                raise InputError(f"{spoco}: SPOCO outputs need embeddings (pseudo_labels.fusion: embedding)")
            write_spoco_shard(
                spoco,
                ids,
                np.stack(images),
                np.stack([p.embeddings for p in labels]),
                np.stack([p.panoptic for p in labels]),
            )
    return {"shard": index, "images": len(labels), "seconds": dict(generator.timings)}


def _read_ahead(
    pool: ThreadPoolExecutor, store: LabelStore, generator: Labeller, paths: list[str]
) -> Iterator[np.ndarray]:
    """The images of ``paths`` in order, each next one read on ``pool`` while the caller works on one."""

    def read(path: str) -> np.ndarray:
        with generator.timed("read"):
            return store.read_image(path)

    pending = pool.submit(read, paths[0]) if paths else None
    for k in range(len(paths)):
        image = pending.result()
        pending = pool.submit(read, paths[k + 1]) if k + 1 < len(paths) else None
        yield image


def write_spoco_shard(
    path: str | Path, image_ids: list[str], raw: np.ndarray, embeddings: np.ndarray, segmentation: np.ndarray
) -> None:
    """A SPOCO-style prediction file, plain HDF5: ``/raw`` (N, H, W, 3) uint8, ``/embeddings`` (N, D, h, w)
    float16 at the embedding head's resolution, ``/segmentation`` (N, H, W) uint32 panoptic maps
    (spino's encoding: class x 1000 + instance), ``/image_ids``."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("raw", data=raw, compression="gzip", compression_opts=1)
        f.create_dataset("embeddings", data=embeddings.astype(np.float16), compression="gzip", compression_opts=1)
        f.create_dataset("segmentation", data=segmentation, compression="gzip", compression_opts=1)
        f.create_dataset("image_ids", data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())
        f.attrs["encoding"] = "class_id * 1000 + instance (0: none); 255000: void"
