"""Post-processing the instance methods share: its settings (stuff area, flip TTA), the removal of
small stuff regions, the upsampled argmax and Matrix NMS (a mask-based method's suppression, kept
here as mmdetection keeps it among its shared layers). Each method's own grouping lives with the
method (spino.panoptic.instances)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spino.classes import ClassSet
from spino.config import section
from spino.encoding import IGNORE_PANOPTIC


@section("panoptic.train.postprocess")
class PostprocessConfig:
    stuff_area: int  # a stuff class covering fewer pixels of the image becomes void (detectron2: 2048)
    flip: bool  # test-time augmentation: average in the mirrored image's outputs (twice the model passes)


def drop_small_stuff(
    panoptic: torch.Tensor, semantic: torch.Tensor, class_set: ClassSet, min_area: int
) -> torch.Tensor:
    """Void where a stuff class covers fewer than ``min_area`` pixels of the image (Panoptic-DeepLab's stuff_area)."""
    if min_area <= 0:
        return panoptic
    stuff_lut = ~torch.as_tensor(class_set.thing_mask(), device=semantic.device)
    stuff_lut[class_set.num_classes :] = False
    labels = semantic.long().clamp(0, 255)
    small = stuff_lut & (torch.bincount(labels.flatten(), minlength=256) < min_area)  # per class: one pass
    return panoptic.masked_fill_(small[labels], IGNORE_PANOPTIC)


def upsampled_argmax(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(logits, size, "bilinear", align_corners=False)[0].max(0).indices`` for one
    image's (1, C, h, w) logits, without upsampling all C channels where the answer is known: a
    bilinear value is a convex combination of its 4 source pixels, so where all 4 have the same
    argmax, so does the upsampled vector. Only pixels whose sources disagree (near class borders)
    get their C values interpolated, by the same formula; their sums round like torch's to within a
    few ulps, so the two can differ only where two classes tie to ~1e-6. For whole scale factors
    (where the source pixels are plain to compute); other sizes take the full interpolation."""
    c, h, w = logits.shape[-3:]
    height, width = size
    if (height, width) == (h, w):
        return logits[0].max(0).indices
    if height % h or width % w:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0].max(0).indices
    low = logits[0]
    y0, y1, ly0, ly1 = bilinear_sources(height, h, low.device)
    x0, x1, lx0, lx1 = bilinear_sources(width, w, low.device)
    best = low.max(0).indices.to(torch.uint8 if c <= 256 else torch.int64)
    # whether each source block (i, i+1) x (j, j+1) (the last row and column repeated) agrees
    below = torch.cat([best[1:], best[-1:]], 0)
    agree = (best == below) & (best == torch.cat([best[:, 1:], best[:, -1:]], 1))
    agree &= best == torch.cat([below[:, 1:], below[:, -1:]], 1)
    labels = best.index_select(0, y0).index_select(1, x0)
    ys, xs = (~agree.index_select(0, y0).index_select(1, x0)).nonzero(as_tuple=True)
    if len(ys):
        flat = low.reshape(c, h * w)
        a, b = flat.index_select(1, y0[ys] * w + x0[xs]), flat.index_select(1, y0[ys] * w + x1[xs])
        d, e = flat.index_select(1, y1[ys] * w + x0[xs]), flat.index_select(1, y1[ys] * w + x1[xs])
        values = (a * lx0[xs] + b * lx1[xs]) * ly0[ys] + (d * lx0[xs] + e * lx1[xs]) * ly1[ys]
        labels[ys, xs] = values.max(0).indices.to(labels.dtype)
    return labels.long()


def bilinear_sources(out_len: int, in_len: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Bilinear sampling with align_corners=False, as torch computes it: each output index's two
    source indices and their weights."""
    scale = torch.tensor(in_len, dtype=torch.float32) / out_len
    source = ((torch.arange(out_len, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = source.floor().long().clamp(max=in_len - 1)
    i1 = (i0 + 1).clamp(max=in_len - 1)
    l1 = (source - i0).clamp(0, 1)
    return i0.to(device), i1.to(device), (1 - l1).to(device), l1.to(device)


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
