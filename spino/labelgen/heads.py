"""1x1-convolution MLP heads over a bilinearly upsampled feature map.

The first layer is linear and bilinear upsampling is a linear map whose weights sum to one, so
the first layer runs at feature resolution and its (smaller) output is upsampled: the same
numbers as upsampling the features first, for a fraction of the work and memory. At inference
the rest of the MLP runs over bands of output rows, each upsampled on its own by exact separable
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

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Logits at ``size`` (H, W) from features (B, C, h, w); used in training."""
        z = F.interpolate(self.first(features), size=size, mode="bilinear", align_corners=False)
        return self.rest(z)

    @torch.no_grad()
    def predict(self, features: torch.Tensor, size: tuple[int, int], chunk_pixels: int) -> torch.Tensor:
        """The same logits as ``forward`` for one image (1, C, h, w) -> (K, H, W), in row bands."""
        z = self.first(features)[0]  # (K0, h, w)
        height, width = size
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
        return out


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
