"""1x1-convolution MLP heads over a bilinearly upsampled feature map.

The MLP runs on a grid of ``size / output_stride`` pixels and its logits are resized bilinearly
to ``size``: output stride 1 is the paper's evaluation (the whole MLP at every input pixel), 4
costs 16 times less in the layers after the first and resizes only C channels of logits.
The first layer is linear and bilinear upsampling is a linear map whose weights sum to one, so
the first layer runs at feature resolution and its (smaller) output is upsampled: the same
numbers as upsampling the features first, for a fraction of the work and memory. At inference
the rest of the MLP runs over bands of grid rows, each upsampled on its own by exact separable
interpolation matrices, so peak memory is bounded by ``chunk_pixels``, not by the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPHead(nn.Module):
    def __init__(self, in_channels: int, hidden: list[int], out_channels: int):
        super().__init__()
        widths = [*hidden, out_channels]
        self.first = nn.Conv2d(in_channels, widths[0], 1)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ReLU(inplace=False), nn.Conv2d(a, b, 1)]
        self.rest = nn.Sequential(*layers)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every weight trains (the backbone is not part of the head): what a training state saves."""
        return self.state_dict()

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)

    def forward(
        self, features: torch.Tensor, size: tuple[int, int], grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Logits (B, K, H, W) at ``size`` from features (B, C, h, w), the MLP run on ``grid`` (default: size)."""
        grid = tuple(grid or size)
        z = F.interpolate(self.first(features), size=grid, mode="bilinear", align_corners=False)
        return resize_logits(self.rest(z), size)

    @torch.no_grad()
    def predict(
        self, features: torch.Tensor, size: tuple[int, int], chunk_pixels: int, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The same logits as ``forward`` for one image (1, C, h, w) -> (K, H, W), in row bands of the grid."""
        z = self.first(features)[0]  # (K0, h, w)
        height, width = grid or size
        wy = interpolation_matrix(z.shape[1], height, z.device)
        wx = interpolation_matrix(z.shape[2], width, z.device)
        zx = torch.einsum("khw,Xw->khX", z, wx)  # upsample columns once: (K0, h, W)
        rows = max(1, chunk_pixels // width)
        out = None
        for y0 in range(0, height, rows):
            band = torch.einsum("Yh,khX->kYX", wy[y0 : y0 + rows], zx)
            logits = self.rest(band.unsqueeze(0))[0]
            if out is None:
                out = torch.empty((logits.shape[0], height, width), dtype=logits.dtype, device=logits.device)
            out[:, y0 : y0 + rows] = logits
        return resize_logits(out[None], size)[0]


def head_grid(size: tuple[int, int], output_stride: int) -> tuple[int, int]:
    """The grid an MLP head runs on for an output of ``size`` at ``output_stride`` (1: every pixel)."""
    return max(1, round(size[0] / output_stride)), max(1, round(size[1] / output_stride))


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) logits resized bilinearly to ``size`` (unchanged when they have it already)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def interpolation_matrix(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D bilinear resizing as F.interpolate(align_corners=False) does it."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    lam = src - i0
    w = torch.zeros((n_out, n_in), dtype=torch.float64)
    rows = torch.arange(n_out)
    w.index_put_((rows, i0), 1 - lam, accumulate=True)
    w.index_put_((rows, i1), lam, accumulate=True)
    return w.to(device=device, dtype=torch.float32)
