"""Panoptic-DeepLab's grouping, vectorised in torch: centres, pixels to their nearest voted centre,
and the stuff/thing merge."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spino.classes import IGNORE, ClassSet
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.errors import InputError
from spino.panoptic.instances.center_offset.settings import CenterOffsetConfig
from spino.panoptic.postprocess import drop_small_stuff


def find_centers(heatmap: torch.Tensor, cfg: CenterOffsetConfig) -> torch.Tensor:
    """(K, 2) (y, x) of local maxima above the threshold, at most top_k, strongest first.

    A maximum shared by neighbouring pixels (a plateau, as bilinear upsampling makes of a peak
    between pixels) counts once: of equal maxima within the NMS window the first in raster order stays.
    """
    h = heatmap.reshape(heatmap.shape[-2:])
    pooled = F.max_pool2d(h[None, None], cfg.nms_kernel, stride=1, padding=cfg.nms_kernel // 2)[0, 0]
    keep = (h == pooled) & (h > cfg.center_threshold)
    scores = h[keep]
    coords = keep.nonzero()  # raster order
    near = (coords[:, None, :] - coords[None, :, :]).abs().amax(-1) <= cfg.nms_kernel // 2
    tie = near & (scores[:, None] == scores[None, :])
    first = ~torch.tril(tie, diagonal=-1).any(1)  # no equal maximum earlier in raster order within the window
    coords, scores = coords[first], scores[first]
    order = scores.argsort(descending=True, stable=True)[: cfg.top_k]
    return coords[order]


def group_pixels(thing: torch.Tensor, offset: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    """Instance number (1..K, 0 elsewhere) of every thing pixel: the centre nearest to pixel + offset."""
    h, w = thing.shape
    out = torch.zeros((h, w), dtype=torch.long, device=thing.device)
    if centers.numel() == 0:
        return out
    idx = thing.flatten().nonzero()[:, 0]
    ys, xs = (idx // w).float(), (idx % w).float()
    flat_offset = offset.reshape(2, -1)
    voted = torch.stack([ys + flat_offset[0, idx], xs + flat_offset[1, idx]], dim=1)
    labels = torch.empty(len(idx), dtype=torch.long, device=thing.device)
    step = max(1, chunk // len(centers))  # pixels per block of the (pixels x centres) distance matrix
    for start in range(0, len(idx), step):
        labels[start : start + step] = torch.cdist(voted[start : start + step], centers.float()).argmin(1) + 1
    out.view(-1)[idx] = labels
    return out


def merge(
    semantic: torch.Tensor, center: torch.Tensor, offset: torch.Tensor, class_set: ClassSet, cfg: CenterOffsetConfig
) -> torch.Tensor:
    """Stuff/thing merge of a semantic map (train ids) with a centre heatmap and offsets (dy, dx)."""
    thing_lut = torch.as_tensor(class_set.thing_mask(), device=semantic.device)
    thing = thing_lut[semantic.clamp(0, 255)] & (semantic != IGNORE)
    centers = find_centers(center, cfg)
    instance = group_pixels(thing, offset, centers, cfg.chunk_pixels)
    panoptic = semantic.long() * LABEL_DIVISOR
    panoptic[semantic == IGNORE] = IGNORE_PANOPTIC
    if centers.numel() == 0:
        panoptic[thing] = IGNORE_PANOPTIC
        return panoptic
    c = class_set.num_classes
    k = len(centers)
    # majority class of each instance among thing classes
    votes = torch.zeros((k + 1) * c, dtype=torch.long, device=semantic.device)
    votes.index_add_(0, (instance[thing] * c + semantic[thing].long()), torch.ones_like(instance[thing]))
    votes = votes.view(k + 1, c)
    votes[:, ~thing_lut[:c]] = -1
    inst_class = votes.argmax(1)
    present = votes.max(1).values > 0
    present[0] = False
    # number instances 1..n within each class, in centre order
    number = torch.zeros(k + 1, dtype=torch.long, device=semantic.device)
    for cls in inst_class[present].unique():
        members = (present & (inst_class == cls)).nonzero()[:, 0]
        number[members] = torch.arange(1, len(members) + 1, device=semantic.device)
    if int(number.max()) >= LABEL_DIVISOR:
        raise InputError(f"more than {LABEL_DIVISOR - 1} instances of one class")
    ids = inst_class * LABEL_DIVISOR + number
    panoptic[thing] = ids[instance[thing]]
    return panoptic


def panoptic_from_outputs(
    semantic_logits: torch.Tensor,
    center: torch.Tensor,
    offset: torch.Tensor,
    class_set: ClassSet,
    cfg: CenterOffsetConfig,
    stuff_area: int,
) -> torch.Tensor:
    """Panoptic map (spino encoding, int64) for one image from its head outputs at full resolution.

    Thing pixels join the nearest centre; each instance takes the majority class of its pixels;
    instances are numbered per class; thing pixels without any centre become void.
    """
    semantic = semantic_logits.argmax(0)
    return drop_small_stuff(merge(semantic, center, offset, class_set, cfg), semantic, class_set, stuff_area)
