"""SOLOv2's inference: point NMS on the category grids, masks from the dynamic kernels, maskness,
Matrix NMS."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spino.classes import ClassSet
from spino.panoptic.instances.solov2.settings import Solov2Config


def matrix_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, sigma: float) -> torch.Tensor:
    """Matrix NMS, Gaussian (SOLOv2): the decayed scores of (n, h, w) binary masks sorted by descending
    score. Each mask's decay is the least, over higher-scored masks i of its class, of
    f(iou_ij) / f(max iou of i with any mask above i), f(x) = exp(-sigma x^2)."""
    n = len(masks)
    if n == 0:
        return scores
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    areas = flat.sum(1)
    iou = (inter / (areas[:, None] + areas[None, :] - inter).clamp(min=1e-6)).triu(diagonal=1)
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    decay_iou = iou * same
    compensate = decay_iou.max(0).values.expand(n, n).T
    decay = (torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * compensate**2)).min(0).values
    return scores * decay


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


def detect(outputs: dict[str, torch.Tensor], class_set: ClassSet, cfg: Solov2Config, size: tuple[int, int]) -> dict:
    """The instances of one image: masks (K, H, W) bool and their logits at ``size``, classes and scores."""
    scores = point_nms(outputs["category"][0].float().sigmoid(), cfg.grids)
    scores[:, ~torch.as_tensor(class_set.thing_mask()[: scores.shape[1]], device=scores.device)] = 0
    cells, classes = (scores > cfg.score_threshold).nonzero(as_tuple=True)
    values = scores[cells, classes]
    top = values.argsort(descending=True)[: cfg.pre_nms]
    cells, classes, values = cells[top], classes[top], values[top]
    features = outputs["mask_features"][0].float()
    logits = torch.einsum("ke,ehw->khw", outputs["kernel"][0].float()[cells], features)
    masks = logits.sigmoid() > cfg.mask_threshold
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
    full = (
        F.interpolate(logits[kept][None], size=size, mode="bilinear", align_corners=False)[0]
        if len(kept)
        else logits[:0]
    )
    return {
        "logits": full,
        "masks": full.sigmoid() > cfg.mask_threshold,
        "classes": classes[kept],
        "scores": values[kept],
    }
