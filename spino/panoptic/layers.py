"""Building blocks of the panoptic model's adapter, decoders and heads."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, hidden, 5), nn.Conv2d(hidden, cout, 1))
