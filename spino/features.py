"""Image descriptors: each image's frozen backbone features, mean-pooled and L2-normalised (the
descriptor PASTEL finds similar images by), and the HDF5 file ``spino features`` writes them to.
Read by ``suggest`` (which images to annotate) and by self-training (each annotated image's
nearest neighbours): a module of their own, below both."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from spino.backbone import Backbone
from spino.data.io import atomic_path, read_image
from spino.errors import InputError
from spino.progress import progress
from spino.transforms import image_tensor


@torch.no_grad()
def pooled_features(
    backbone: Backbone, image_paths: list[str], input_size: tuple[int, int], device: str = "cpu"
) -> np.ndarray:
    """(N, C) float32: each image resized to ``input_size``, its features averaged over space, L2-normalised."""
    backbone = backbone.to(device)
    size = backbone.round_size(*input_size)
    rows = []
    for path in progress(image_paths, "image features"):
        features = backbone(image_tensor(read_image(path), size, device)[None])
        rows.append(features.mean(dim=(2, 3))[0].cpu())
    pooled = torch.stack(rows)
    return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32)


def write_features(path: str | Path, image_ids: list[str], splits: list[str], features: np.ndarray, meta: dict) -> None:
    """``/features`` (N, C), ``/image_ids`` and ``/splits`` in an HDF5 file, written atomically; ``meta`` as attributes."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=features)
        for name, values in (("image_ids", image_ids), ("splits", splits)):
            f.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
        for key, value in meta.items():
            f.attrs[key] = value


def read_features(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Image ids, their splits and their (N, C) descriptors, as ``spino features`` wrote them."""
    try:
        with h5py.File(path, "r") as f:
            ids, splits = ([v.decode() for v in f[name][:]] for name in ("image_ids", "splits"))
            return ids, splits, f["features"][:]
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: not an image-feature file of `spino features` ({err})") from err
