"""Test-time tiles: scale s cuts an image into s x s tiles, each fed to the heads at their input size.

With ``overlap`` 0 the tiles partition the image (the SPINO code). With ``overlap`` > 0 neighbouring
tiles of the same size overlap by that fraction of a tile (the follow-up PASTEL uses 0.5, a stride
of half a tile), and their predictions are blended with weights that ramp linearly across each
overlap: a tile's edge, where its view of the scene is cut off, counts least, so no straight seam
appears where one tile's prediction ends and the next begins.
"""

from __future__ import annotations

import math

import torch

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def _spans(n: int, scale: int, overlap: float) -> list[tuple[int, int]]:
    """(start, stop) of the tiles along one axis of length ``n``."""
    if overlap <= 0:
        edges = [round(i * n / scale) for i in range(scale + 1)]
        return list(zip(edges[:-1], edges[1:]))
    size = math.ceil(n / scale)
    if size >= n:
        return [(0, n)]
    stride = max(1, round(size * (1 - overlap)))
    starts = list(range(0, n - size, stride)) + [n - size]
    return [(a, a + size) for a in starts]


def tile_boxes(height: int, width: int, scale: int, overlap: float = 0.0) -> list[Box]:
    """(y0, y1, x0, x1) of the tiles of one scale, row by row."""
    return [(y0, y1, x0, x1) for y0, y1 in _spans(height, scale, overlap) for x0, x1 in _spans(width, scale, overlap)]


def _ramp(start: int, stop: int, spans: list[tuple[int, int]]) -> torch.Tensor:
    """1-D weights of one tile: linear ramps over the parts it shares with its neighbours, else 1."""
    length = stop - start
    w = torch.ones(length)
    pos = torch.arange(length, dtype=torch.float32) + 0.5
    before = max((b - start for a, b in spans if a < start < b), default=0)  # overlap with the previous tile
    after = max((stop - a for a, b in spans if a < stop < b), default=0)  # overlap with the next tile
    if before > 0:
        w = torch.minimum(w, pos / before)
    if after > 0:
        w = torch.minimum(w, (length - pos) / after)
    return w


class Blend:
    """Adds one scale's tile predictions to ``total`` (C..., H, W), blended where tiles overlap.

    Without overlap every pixel has exactly one tile, so predictions go straight into ``total``
    (no extra buffer); with overlap a weighted sum and the weights are kept from the first tile
    on, and their quotient is added to ``total`` when the scale's last tile has come (tiles may
    come batched with other scales', so a blend finishes itself).
    """

    def __init__(self, total: torch.Tensor, scale: int, overlap: float):
        self.total = total
        height, width = total.shape[-2:]
        self.direct = overlap <= 0
        self.y_spans, self.x_spans = _spans(height, scale, overlap), _spans(width, scale, overlap)
        self.left = len(self.y_spans) * len(self.x_spans)  # tiles still to come
        self.sum: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    def add(self, box: Box, value: torch.Tensor) -> None:
        y0, y1, x0, x1 = box
        self.left -= 1
        if self.direct:
            self.total[..., y0:y1, x0:x1] += value
            return
        if self.sum is None:
            self.sum = torch.zeros_like(self.total)
            self.weight = torch.zeros(self.total.shape[-2:], device=self.total.device)
        w = _ramp(y0, y1, self.y_spans)[:, None] * _ramp(x0, x1, self.x_spans)[None, :]
        w = w.to(self.sum.device)
        self.sum[..., y0:y1, x0:x1] += value * w
        self.weight[y0:y1, x0:x1] += w
        if self.left == 0:
            self.total += self.sum / self.weight
            self.sum = self.weight = None
