"""Boundary targets: a pixel is interior when all 8 neighbours carry its own instance id."""

from __future__ import annotations

import numpy as np

from spino.classes import ClassSet
from spino.encoding import instance_of, semantic_of


def boundary_ids(panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Ids for the boundary rule: the panoptic value of thing instances, 0 for stuff, crowd and void."""
    thing = class_set.thing_mask()[semantic_of(panoptic)] & (instance_of(panoptic) > 0)
    return np.where(thing, panoptic, 0).astype(np.int64)


def interior(ids: np.ndarray) -> np.ndarray:
    """True where all 8 neighbours have the pixel's id (image borders repeat the edge pixel)."""
    padded = np.pad(ids, 1, mode="edge")
    h, w = ids.shape
    same = np.ones((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                same &= padded[dy : dy + h, dx : dx + w] == ids
    return same
