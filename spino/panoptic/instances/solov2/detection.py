"""SOLOv2's inference: point NMS on the category grids, masks from the dynamic kernels, maskness,
Matrix NMS, and the kept masks upsampled to the output only inside their windows (most of a
full-size mask is known to be empty: upsampling and thresholding whole maps was most of the cost)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spino.classes import ClassSet
from spino.panoptic.instances.solov2.settings import Solov2Config
from spino.panoptic.postprocess import bilinear_sources, matrix_nms

Window = tuple[slice, slice]


@dataclass
class Detections:
    """An image's instances by descending score, each as its mask and logits inside its window: the
    rows and columns of the output whose bilinear sources touch the instance's low-resolution mask.
    A bilinear value is a convex combination of its four sources, so outside its window an
    instance's upsampled logits stay below the mask threshold: no full-size map is needed."""

    windows: list[Window]
    logits: list[torch.Tensor]  # (rows, columns) of each window, at the output's resolution
    masks: list[torch.Tensor]  # the same, bool: logits above the mask threshold
    classes: torch.Tensor
    scores: torch.Tensor


def flip_cells(values: torch.Tensor, grids: tuple[int, ...]) -> torch.Tensor:
    """(B, N, C) per-cell values of a mirrored image, each level's grid mirrored back."""
    out, start = [], 0
    for s in grids:
        level = values[:, start : start + s * s].reshape(values.shape[0], s, s, -1)
        out.append(level.flip(2).reshape(values.shape[0], s * s, -1))
        start += s * s
    return torch.cat(out, 1)


def point_nms(category: torch.Tensor, grids: tuple[int, ...]) -> torch.Tensor:
    """(N, C) scores with every cell that is not the maximum of its 2 x 2 neighbourhood zeroed."""
    out, start = [], 0
    for s in grids:
        level = category[start : start + s * s].T.reshape(1, -1, s, s)
        peak = F.max_pool2d(level, 2, stride=1, padding=1)[..., :-1, :-1]
        out.append((level * (peak == level)).reshape(-1, s * s).T)
        start += s * s
    return torch.cat(out, 0)


def detect(
    outputs: dict[str, torch.Tensor], class_set: ClassSet, cfg: Solov2Config, size: tuple[int, int]
) -> Detections:
    """The instances of one image at ``size``: masks above ``cfg.mask_threshold``, classes and scores."""
    threshold = math.log(cfg.mask_threshold / (1 - cfg.mask_threshold))  # sigmoid(x) > t where x > logit(t)
    scores = point_nms(outputs["category"][0].float().sigmoid(), cfg.grids)
    scores[:, ~torch.as_tensor(class_set.thing_mask()[: scores.shape[1]], device=scores.device)] = 0
    cells, classes = (scores > cfg.score_threshold).nonzero(as_tuple=True)
    values = scores[cells, classes]
    top = values.argsort(descending=True)[: cfg.pre_nms]
    cells, classes, values = cells[top], classes[top], values[top]
    features = outputs["mask_features"][0].float()
    logits = torch.einsum("ke,ehw->khw", outputs["kernel"][0].float()[cells], features)
    masks = logits > threshold
    areas = masks.flatten(1).sum(1)
    keep = areas > 0
    maskness = (logits.sigmoid() * masks).flatten(1).sum(1) / areas.clamp(min=1)
    values = (values * maskness)[keep]
    logits, masks, classes = logits[keep], masks[keep], classes[keep]
    order = values.argsort(descending=True)
    logits, masks, classes, values = logits[order], masks[order], classes[order], values[order]
    values = matrix_nms(masks, classes, values, cfg.nms_sigma)
    kept = (values > cfg.update_threshold).nonzero()[:, 0]
    kept = kept[values[kept].argsort(descending=True)][: cfg.max_detections]
    windows, full = upsample_in_windows(logits[kept], masks[kept], size)
    return Detections(windows, full, [m > threshold for m in full], classes[kept], values[kept])


def upsample_in_windows(
    logits: torch.Tensor, masks: torch.Tensor, size: tuple[int, int]
) -> tuple[list[Window], list[torch.Tensor]]:
    """Each of (K, h, w) mask logits bilinearly upsampled to ``size`` (as ``F.interpolate`` with
    align_corners=False, to within a few ulps) inside the window where its low-resolution ``masks``
    can reach: the output pixels with a source pixel in the mask's rows and columns."""
    y0, y1, ly0, ly1 = bilinear_sources(size[0], logits.shape[1], logits.device)
    x0, x1, lx0, lx1 = bilinear_sources(size[1], logits.shape[2], logits.device)
    rows, columns = _reach(masks.any(2), y0, y1), _reach(masks.any(1), x0, x1)
    windows, upsampled = [], []
    for low, (top, bottom, left, right) in zip(logits, torch.cat([rows, columns], 1).tolist()):  # one sync
        ys, xs = slice(top, bottom), slice(left, right)
        upper, lower = low.index_select(0, y0[ys]), low.index_select(0, y1[ys])
        upper = upper.index_select(1, x0[xs]) * lx0[xs] + upper.index_select(1, x1[xs]) * lx1[xs]
        lower = lower.index_select(1, x0[xs]) * lx0[xs] + lower.index_select(1, x1[xs]) * lx1[xs]
        windows.append((ys, xs))
        upsampled.append(upper * ly0[ys, None] + lower * ly1[ys, None])
    return windows, upsampled


def _reach(present: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(K, 2) start and stop of the output indices whose sorted source indices ``first`` and ``second``
    meet the span of each row of ``present`` (K, n) bool; empty (0, 0) for a row without one."""
    n = present.shape[1]
    low = present.to(torch.uint8).argmax(1)  # the first present index
    high = n - 1 - present.flip(1).to(torch.uint8).argmax(1)  # the last
    start = torch.searchsorted(second, low)
    stop = torch.maximum(start, torch.searchsorted(first, high, right=True))
    return torch.stack([start, stop], 1) * present.any(1, keepdim=True)
