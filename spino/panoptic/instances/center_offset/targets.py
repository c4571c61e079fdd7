"""Panoptic-DeepLab's training targets from a panoptic map: centre heatmap and offsets."""

from __future__ import annotations

import numpy as np
import torch

from spino.classes import ClassSet
from spino.encoding import IGNORE_PANOPTIC, instance_of, semantic_of
from spino.panoptic.targets import TargetConfig, semantic_targets


def panoptic_targets(
    panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig, sigma: float
) -> dict[str, torch.Tensor]:
    """semantic (H, W) long, semantic_weights, center (1, H, W), center_weights, offset (2, H, W), offset_weights.

    Centres are instance centroids; offsets point from each thing pixel to its centroid (dy, dx).
    Crowd and void pixels carry no centre/offset loss; crowd stays in the semantic loss.
    """
    h, w = panoptic.shape
    semantic = semantic_of(panoptic).astype(np.int64)
    instance = instance_of(panoptic)
    thing = class_set.thing_mask()[semantic.clip(0, 255)] & (instance > 0)
    center = np.zeros((h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    ids, inverse, areas = np.unique(np.where(thing, panoptic, 0), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(h, w)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flat_y, flat_x = ys.ravel(), xs.ravel()
    sums_y = np.bincount(inverse.ravel(), flat_y, minlength=len(ids))
    sums_x = np.bincount(inverse.ravel(), flat_x, minlength=len(ids))
    radius = int(3 * sigma + 1)
    for k, (seg, area) in enumerate(zip(ids.tolist(), areas.tolist())):
        if seg == 0:
            continue
        cy, cx = sums_y[k] / area, sums_x[k] / area
        mask = inverse == k
        offset[0][mask] = cy - ys[mask]
        offset[1][mask] = cx - xs[mask]
        iy, ix = int(round(cy)), int(round(cx))
        y0, y1, x0, x1 = max(0, iy - radius), min(h, iy + radius + 1), max(0, ix - radius), min(w, ix + radius + 1)
        g = np.exp(-((ys[y0:y1, x0:x1] - iy) ** 2 + (xs[y0:y1, x0:x1] - ix) ** 2) / (2 * sigma**2))
        center[y0:y1, x0:x1] = np.maximum(center[y0:y1, x0:x1], g)
    crowd = class_set.thing_mask()[semantic.clip(0, 255)] & (instance == 0)
    center_weights = ((panoptic != IGNORE_PANOPTIC) & ~crowd).astype(np.float32)
    return {
        **semantic_targets(panoptic, class_set, cfg),
        "center": torch.from_numpy(center)[None],
        "center_weights": torch.from_numpy(center_weights)[None],
        "offset": torch.from_numpy(offset),
        "offset_weights": torch.from_numpy(thing.astype(np.float32))[None],
    }
