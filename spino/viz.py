"""Pictures of panoptic maps: class colours, instance shades and segment borders over the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.encoding import instance_of, semantic_of


def colorize(panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """RGB picture: each class in its colour, each thing instance a shade of it, void black."""
    rgb = class_set.palette()[semantic_of(panoptic)].astype(np.int16)
    inst = instance_of(panoptic).astype(np.int64)
    # Deterministic per-instance shade so neighbouring instances of one class differ visibly.
    shade = ((inst * 37) % 11 - 5) * 12
    shade[inst == 0] = 0
    return np.clip(rgb + shade[..., None], 0, 255).astype(np.uint8)


def segment_borders(panoptic: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour belongs to another segment."""
    border = np.zeros(panoptic.shape, dtype=bool)
    border[:, :-1] |= panoptic[:, :-1] != panoptic[:, 1:]
    border[:-1, :] |= panoptic[:-1, :] != panoptic[1:, :]
    return border


def overlay(image: np.ndarray | None, panoptic: np.ndarray, class_set: ClassSet, alpha: float = 0.5) -> np.ndarray:
    """Colourised map blended over the image (or alone), with white segment borders."""
    colors = colorize(panoptic, class_set).astype(np.float32)
    out = colors if image is None else (1 - alpha) * image.astype(np.float32) + alpha * colors
    out[segment_borders(panoptic)] = 255
    return out.astype(np.uint8)


def panel(image: np.ndarray | None, panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Side by side: image (if any), colourised map, overlay with borders."""
    parts = ([image] if image is not None else []) + [
        colorize(panoptic, class_set),
        overlay(image, panoptic, class_set),
    ]
    return np.concatenate(parts, axis=1)


def store_panel(store, index: int) -> np.ndarray:
    """The panel of one image of a label store (its image when the path it recorded still exists)."""
    from spino.errors import InputError

    if not 0 <= index < store.num_images:
        raise InputError(f"{store.path}: index {index} out of range (0..{store.num_images - 1})")
    paths = store.meta.get("image_paths")
    image = store.read_image(paths[index]) if paths and Path(paths[index]).is_file() else None
    return panel(image, store.panoptic(index), store.class_set)
