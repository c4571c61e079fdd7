"""Building blocks of the panoptic model's adapter, decoders and heads."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class FloatOutput(nn.Sequential):
    """A Sequential whose last layer runs in fp32 outside autocast: under bf16 training the logits,
    centre heatmaps and offsets of 50-100 px it outputs (and what upsamples them) keep fp32's
    precision instead of bf16's 8 bits. The same keys as a plain Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[:-1]:
            x = layer(x)
        with torch.autocast(x.device.type, enabled=False):
            return self[-1](x.float())


def head(cin: int, hidden: int, cout: int) -> FloatOutput:
    return FloatOutput(conv_bn_relu(cin, hidden, 5), nn.Conv2d(hidden, cout, 1))
