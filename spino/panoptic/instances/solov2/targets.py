"""SOLOv2's training targets from a panoptic map: per cell, the class and mask of the instance whose
centre region holds it."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from spino.classes import IGNORE, ClassSet
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, instance_of, semantic_of
from spino.panoptic.instances.solov2.settings import Solov2Config

MASK_STRIDE = 4  # the mask features' stride (the instance decoder's output)


def stride4_size(n: int) -> int:
    """The size of the adapter's stride-4 map along a side of n pixels (two stride-2 convs, padding 1)."""
    return math.ceil(math.ceil(n / 2) / 2)


def cell_centres(level: int, cfg: Solov2Config, shape: tuple[int, int]) -> np.ndarray:
    """Pixel (y, x) of each cell's centre of one level's grid, for an image of ``shape``."""
    s = cfg.grids[level]
    ys = (np.arange(s) + 0.5) * shape[0] / s
    xs = (np.arange(s) + 0.5) * shape[1] / s
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def solov2_targets(panoptic: np.ndarray, class_set: ClassSet, cfg: Solov2Config) -> dict[str, torch.Tensor]:
    """Per cell of every grid: the class of the instance it is assigned to (-1: background), whether it
    carries category loss (not on void or crowd), and which of the image's instance masks (at the
    mask stride) its mask is; and the weights of the mask pixels (0 on void and crowd)."""
    h, w = panoptic.shape
    semantic, instance = semantic_of(panoptic), instance_of(panoptic)
    thing = class_set.thing_mask()[np.where(semantic == IGNORE, 0, semantic)] & (semantic != IGNORE)
    no_loss = (panoptic == IGNORE_PANOPTIC) | (thing & (instance == 0))  # void, crowd
    hm, wm = stride4_size(h), stride4_size(w)
    n_cells = sum(s * s for s in cfg.grids)
    category = np.full(n_cells, -1, np.int64)
    weights = np.ones(n_cells, np.float32)
    which = np.full(n_cells, -1, np.int64)
    masks = np.zeros((cfg.max_instances, hm, wm), np.uint8)
    starts = np.cumsum([0, *[s * s for s in cfg.grids]])
    for level in range(len(cfg.grids)):  # cells centred on void or crowd carry no category loss
        centres = cell_centres(level, cfg, (h, w)).astype(np.int64)
        weights[starts[level] : starts[level + 1]] = ~no_loss[
            centres[:, 0].clip(0, h - 1), centres[:, 1].clip(0, w - 1)
        ]
    ids, areas = np.unique(np.where(thing & (instance > 0), panoptic, 0), return_counts=True)
    order = [k for k in np.argsort(-areas, kind="stable") if ids[k] != 0 and areas[k] >= cfg.min_instance_area]
    shorter = min(h, w)
    for slot, k in enumerate(order[: cfg.max_instances]):
        mask = panoptic == ids[k]
        masks[slot] = _downsampled(mask, (hm, wm))
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        half_h, half_w = 0.5 * (ys.max() - ys.min() + 1) * cfg.sigma, 0.5 * (xs.max() - xs.min() + 1) * cfg.sigma
        scale = math.sqrt(areas[k]) / shorter
        for level, (low, high) in enumerate(cfg.scale_ranges):
            if not low <= scale <= high:
                continue
            cells = _centre_region(cy, cx, half_h, half_w, cfg.grids[level], (h, w))
            category[starts[level] + cells] = ids[k] // LABEL_DIVISOR
            which[starts[level] + cells] = slot
            weights[starts[level] + cells] = 1.0
    mask_weights = _downsampled(~no_loss, (hm, wm)).astype(np.float32)
    return {
        "solo_category": torch.from_numpy(category),
        "solo_category_weights": torch.from_numpy(weights),
        "solo_instance": torch.from_numpy(which),
        "solo_masks": torch.from_numpy(masks),
        "solo_mask_weights": torch.from_numpy(mask_weights),
    }


def _downsampled(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary map at ``size`` (the mask stride): a cell is set where most of its pixels are."""
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    padded = F.pad(t, (0, size[1] * MASK_STRIDE - mask.shape[1], 0, size[0] * MASK_STRIDE - mask.shape[0]))
    return (F.avg_pool2d(padded, MASK_STRIDE)[0, 0] >= 0.5).numpy().astype(np.uint8)


def _centre_region(cy: float, cx: float, half_h: float, half_w: float, s: int, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the cells of an S x S grid in an instance's centre region: its box scaled by
    sigma around the centre of mass, at most the 3 x 3 cells around the centre's cell."""
    h, w = shape
    coord_y, coord_x = int(cy / h * s), int(cx / w * s)
    top = max(int((cy - half_h) / h * s), coord_y - 1, 0)
    bottom = min(int((cy + half_h) / h * s), coord_y + 1, s - 1)
    left = max(int((cx - half_w) / w * s), coord_x - 1, 0)
    right = min(int((cx + half_w) / w * s), coord_x + 1, s - 1)
    rows, cols = np.meshgrid(np.arange(top, bottom + 1), np.arange(left, right + 1), indexing="ij")
    return (rows * s + cols).ravel()
