"""Panoptic-DeepLab's grouping, vectorised in torch: centres, pixels to their nearest voted centre,
and the stuff/thing merge."""

from __future__ import annotations

from dataclasses import dataclass

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
    coords = (h > cfg.center_threshold).nonzero()  # raster order
    coords = coords[h[coords[:, 0], coords[:, 1]] == window_max(h, coords, cfg.nms_kernel)]
    scores = h[coords[:, 0], coords[:, 1]]
    near = (coords[:, None, :] - coords[None, :, :]).abs().amax(-1) <= cfg.nms_kernel // 2
    tie = near & (scores[:, None] == scores[None, :])
    first = ~torch.tril(tie, diagonal=-1).any(1)  # no equal maximum earlier in raster order within the window
    coords, scores = coords[first], scores[first]
    order = scores.argsort(descending=True, stable=True)[: cfg.top_k]
    return coords[order]


def window_max(heatmap: torch.Tensor, coords: torch.Tensor, kernel: int) -> torch.Tensor:
    """The heatmap's maximum over the ``kernel`` x ``kernel`` window around each of ``coords``
    (max pooling, read only where asked): a trained model's heatmap passes the centre threshold on
    a few percent of the pixels. Where most pixels are asked, pooling the whole map is cheaper (as a
    column maximum of row maxima: the same values, 2k instead of k^2 reads)."""
    r = kernel // 2
    if len(coords) * kernel > heatmap.numel() // 4:
        rows = F.max_pool2d(heatmap[None, None], (kernel, 1), stride=1, padding=(r, 0))
        pooled = F.max_pool2d(rows, (1, kernel), stride=1, padding=(0, r))[0, 0]
        return pooled[coords[:, 0], coords[:, 1]]
    padded = F.pad(heatmap, (r, r, r, r), value=-torch.inf).reshape(-1)
    width = heatmap.shape[-1] + 2 * r
    window = torch.arange(kernel, device=heatmap.device)
    steps = (window[:, None] * width + window[None, :]).reshape(-1)
    return padded[(coords[:, 0] * width + coords[:, 1])[:, None] + steps[None, :]].amax(1)


def nearest_centres(
    pixels: torch.Tensor, width: int, offset: torch.Tensor, centers: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Instance number (1..K) of each pixel (flat indices into an image ``width`` wide): the centre
    nearest to pixel + offset, over (pixels x centres) distance blocks of at most ``chunk`` entries."""
    ys, xs = (pixels // width).float(), (pixels % width).float()
    flat_offset = offset.reshape(2, -1)
    voted = torch.stack([ys + flat_offset[0, pixels], xs + flat_offset[1, pixels]], dim=1)
    labels = torch.empty(len(pixels), dtype=torch.long, device=pixels.device)
    step = max(1, chunk // len(centers))
    for start in range(0, len(pixels), step):
        labels[start : start + step] = torch.cdist(voted[start : start + step], centers.float()).argmin(1) + 1
    return labels


@dataclass(frozen=True)
class Grouping:
    """A merged panoptic map and how its thing pixels were grouped (what the scores need)."""

    panoptic: torch.Tensor  # (H, W) int64, spino encoding
    pixels: torch.Tensor  # flat indices of the thing pixels
    instance: torch.Tensor  # the centre (1..K) each of them joined
    ids: torch.Tensor  # (K + 1,) the panoptic id of each centre's instance

    def peaks(self, heatmap: torch.Tensor) -> dict[int, float]:
        """Panoptic id -> the heatmap's maximum over its pixels, for every thing instance."""
        if not len(self.pixels):
            return {}
        values = heatmap.reshape(-1)[self.pixels].float()
        peaks = torch.full((len(self.ids),), -torch.inf, device=heatmap.device)
        peaks = peaks.scatter_reduce(0, self.instance, values, reduce="amax")
        present = torch.zeros(len(self.ids), dtype=torch.bool, device=heatmap.device)
        present[self.instance] = True
        return dict(zip(self.ids[present].tolist(), peaks[present].tolist()))


def group(
    semantic: torch.Tensor, center: torch.Tensor, offset: torch.Tensor, class_set: ClassSet, cfg: CenterOffsetConfig
) -> Grouping:
    """Stuff/thing merge of a semantic map (train ids) with a centre heatmap and offsets (dy, dx).

    Thing pixels are gathered once (flat indices) and every step works on them alone."""
    w = semantic.shape[1]
    thing_lut = torch.as_tensor(class_set.thing_mask(), device=semantic.device)
    thing = thing_lut[semantic.clamp(0, 255)] & (semantic != IGNORE)
    centers = find_centers(center, cfg)
    panoptic = (semantic.long() * LABEL_DIVISOR).masked_fill_(semantic == IGNORE, IGNORE_PANOPTIC)
    pixels = thing.flatten().nonzero()[:, 0]
    none = torch.zeros(0, dtype=torch.long, device=semantic.device)
    if centers.numel() == 0:
        panoptic.view(-1)[pixels] = IGNORE_PANOPTIC
        return Grouping(panoptic, none, none, none)
    instance = nearest_centres(pixels, w, offset, centers, cfg.chunk_pixels)
    classes = panoptic.view(-1)[pixels] // LABEL_DIVISOR
    c = class_set.num_classes
    k = len(centers)
    # majority class of each instance among thing classes
    votes = torch.zeros((k + 1) * c, dtype=torch.long, device=semantic.device)
    votes.index_add_(0, instance * c + classes, torch.ones_like(instance))
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
    panoptic.view(-1)[pixels] = ids[instance]
    return Grouping(panoptic, pixels, instance, ids)


def merge(
    semantic: torch.Tensor, center: torch.Tensor, offset: torch.Tensor, class_set: ClassSet, cfg: CenterOffsetConfig
) -> torch.Tensor:
    """The panoptic map of ``group``: thing pixels join the nearest voted centre; each instance takes
    the majority class of its pixels; instances are numbered per class; thing pixels without any
    centre become void."""
    return group(semantic, center, offset, class_set, cfg).panoptic


def scored_panoptic_from_outputs(
    semantic: torch.Tensor,
    center: torch.Tensor,
    offset: torch.Tensor,
    class_set: ClassSet,
    cfg: CenterOffsetConfig,
    stuff_area: int,
) -> tuple[torch.Tensor, dict[int, float]]:
    """Panoptic map (spino encoding, int64) for one image from its semantic map and head outputs at
    full resolution, and each thing instance's score: the centre heatmap's peak over its pixels (the
    height of the centre that gathered it)."""
    grouping = group(semantic, center, offset, class_set, cfg)
    panoptic = drop_small_stuff(grouping.panoptic, semantic, class_set, stuff_area)
    return panoptic, grouping.peaks(center)
