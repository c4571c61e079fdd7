"""SOLOv2's heads: the category and kernel towers over the levels' grids, and the mask features."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spino.panoptic.instances.solov2.settings import Solov2Config
from spino.panoptic.layers import FloatOutput


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """Two channels of normalised pixel coordinates (-1..1, y then x) for a (B, C, h, w) map (CoordConv)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([ys, xs], 1)


def conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(math.gcd(32, cout), cout), nn.ReLU(inplace=True)
    )


def tower(cin: int, channels: int, convs: int, cout: int) -> FloatOutput:
    layers = [conv_gn_relu(cin if i == 0 else channels, channels) for i in range(convs)]
    return FloatOutput(*layers, nn.Conv2d(channels if convs else cin, cout, 3, padding=1))


class Solov2Heads(nn.Module):
    """Category and kernel towers shared over the levels, and the mask-feature projection."""

    def __init__(self, cfg: Solov2Config, in_channels: int, decoder_channels: int, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.category = tower(in_channels, cfg.tower_channels, cfg.tower_convs, num_classes)
        self.kernel = tower(in_channels + 2, cfg.tower_channels, cfg.tower_convs, cfg.mask_channels)
        self.mask_features = FloatOutput(
            conv_gn_relu(decoder_channels + 2, decoder_channels), nn.Conv2d(decoder_channels, cfg.mask_channels, 1)
        )
        nn.init.constant_(
            self.category[-1].bias, -math.log((1 - 0.01) / 0.01)
        )  # the usual prior of focal loss: 1 % foreground

    def forward(self, decoded: torch.Tensor, maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        categories, kernels = [], []
        for grid, stride in zip(self.cfg.grids, self.cfg.strides):
            x = maps[int(math.log2(stride)) - 2]  # the adapter's maps are at strides 4, 8, 16, 32
            x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
            categories.append(self.category(x).flatten(2).transpose(1, 2))  # (B, S*S, C)
            kernels.append(self.kernel(torch.cat([x, coordinates(x)], 1)).flatten(2).transpose(1, 2))  # (B, S*S, E)
        features = self.mask_features(torch.cat([decoded, coordinates(decoded)], 1))
        return {"category": torch.cat(categories, 1), "kernel": torch.cat(kernels, 1), "mask_features": features}
