"""Frozen backbone + multi-scale adapter + Panoptic-DeepLab heads, in plain PyTorch.

The adapter stands in for ViT-Adapter without its deformable-attention CUDA op: a small
convolutional stem on the image (the "spatial prior": detail a stride-14 ViT lacks) gives maps at
strides 4/8/16/32, and the projected backbone features, resampled to each stride, are added to
them. Two light top-down decoders (semantic; instance) fuse the four strides into a stride-4 map,
as Panoptic-DeepLab's dual decoder does; the heads predict semantic logits, an instance-centre
heatmap and centre offsets, upsampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spino.backbone import Backbone, BackboneSpec
from spino.config import load, section
from spino.errors import InputError

STRIDES = (4, 8, 16, 32)


@section("panoptic.model")
class ModelConfig:
    backbone: BackboneSpec  # config `backbone`, beside the section
    channels: int  # adapter width at every stride (the paper: 768)
    decoder_channels: int
    head_channels: int
    input_size: tuple[int, int]

    @classmethod
    def from_dict(cls, data: dict, backbone: dict) -> ModelConfig:
        """From config ``panoptic.model`` and ``backbone`` (a checkpoint's to_dict carries its backbone too)."""
        settings = {k: v for k, v in data.items() if k != "backbone"}
        return load(cls, settings, backbone=BackboneSpec.from_dict(backbone))

    def to_dict(self) -> dict:
        return {
            "channels": self.channels,
            "decoder_channels": self.decoder_channels,
            "head_channels": self.head_channels,
            "input_size": list(self.input_size),
            "backbone": self.backbone.to_dict(),
        }


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Adapter(nn.Module):
    """Backbone features (one stride) + a conv stem on the image -> maps at strides 4, 8, 16, 32."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        c = channels
        self.stem = nn.ModuleList(
            [
                nn.Sequential(
                    conv_bn_relu(3, c // 4, stride=2), conv_bn_relu(c // 4, c // 4), conv_bn_relu(c // 4, c, stride=2)
                ),
                conv_bn_relu(c, c, stride=2),
                conv_bn_relu(c, c, stride=2),
                conv_bn_relu(c, c, stride=2),
            ]
        )
        self.project = nn.ModuleList([nn.Conv2d(in_channels, c, 1) for _ in STRIDES])
        self.fuse = nn.ModuleList([conv_bn_relu(c, c) for _ in STRIDES])

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], image
        for stem, project, fuse in zip(self.stem, self.project, self.fuse):
            x = stem(x)
            injected = F.interpolate(project(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
            maps.append(fuse(x + injected))
        return maps


class Decoder(nn.Module):
    """Top-down fusion of the four strides into one stride-4 map."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(channels, out_channels, 1) for _ in STRIDES])
        self.smooth = nn.ModuleList([conv_bn_relu(out_channels, out_channels) for _ in STRIDES[:-1]])

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](maps[-1])
        for i in range(len(maps) - 2, -1, -1):
            x = F.interpolate(x, size=maps[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[i](x + self.lateral[i](maps[i]))
        return x


def head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, hidden, 5), nn.Conv2d(hidden, cout, 1))


class PanopticModel(nn.Module):
    """Forward: uint8-range images (B, 3, H, W) -> dict of semantic (B, C, H, W), center (B, 1, H, W), offset (B, 2, H, W)."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone)
        self.adapter = Adapter(self.backbone.channels, cfg.channels)
        self.semantic_decoder = Decoder(cfg.channels, cfg.decoder_channels)
        self.instance_decoder = Decoder(cfg.channels, cfg.decoder_channels)
        self.semantic_head = head(cfg.decoder_channels, cfg.head_channels, num_classes)
        self.center_head = head(cfg.decoder_channels, cfg.head_channels, 1)
        self.offset_head = head(cfg.decoder_channels, cfg.head_channels, 2)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone: what checkpoints hold."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise InputError(f"checkpoint does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = images.shape[-2:]
        features = self.backbone(images)
        normalized = (images - self.backbone.mean) / self.backbone.std
        maps = self.adapter(normalized, features)
        sem = self.semantic_decoder(maps)
        ins = self.instance_decoder(maps)
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        return {
            "semantic": up(self.semantic_head(sem)),
            "center": up(self.center_head(ins)),
            "offset": up(self.offset_head(ins)) * 4.0,  # offsets are predicted in stride-4 units
        }
