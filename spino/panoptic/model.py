"""Frozen backbone + multi-scale adapter + decoders + a semantic head and an instance method's heads,
in plain PyTorch.

The adapter stands in for ViT-Adapter without its deformable-attention CUDA op: a small
convolutional stem on the image (the "spatial prior": detail a stride-14 ViT lacks) gives maps at
strides 4/8/16/32, and the projected backbone features, resampled to each stride, are added to
them. Two light top-down decoders (semantic; instance) fuse the four strides into a stride-4 map,
as Panoptic-DeepLab's dual decoder does; the semantic head predicts class logits, and the instance
method (spino.panoptic.instances: Panoptic-DeepLab's centre heatmap and offsets, or SOLOv2's
category and kernel grids with mask features) adds its own heads on the instance decoder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spino.backbone import Backbone, BackboneSpec
from spino.config import load, schema_default, section, settings_of
from spino.errors import InputError
from spino.panoptic.instances import INSTANCE_METHODS
from spino.panoptic.instances.base import InstanceMethod, Widths
from spino.panoptic.layers import conv_bn_relu, head

STRIDES = (4, 8, 16, 32)


@section("panoptic.model")
class ModelConfig:
    backbone: BackboneSpec  # config `backbone`, beside the section
    instance_settings: Any  # the instance method's settings (config panoptic.model.<instance>); None: its defaults
    channels: int  # adapter width at every stride (the paper: 768)
    decoder_channels: int
    head_channels: int
    input_size: tuple[int, int]
    instance: str  # a name of spino.panoptic.instances.INSTANCE_METHODS

    def __post_init__(self) -> None:
        method = INSTANCE_METHODS.get(self.instance)
        if self.instance_settings is None and method.settings is not None:
            object.__setattr__(self, "instance_settings", load(method.settings, {}))

    @classmethod
    def from_dict(cls, data: dict, backbone: dict) -> ModelConfig:
        """From config ``panoptic.model`` and ``backbone`` (a checkpoint's to_dict carries its backbone too).
        Of the methods' sections, the chosen method's is loaded; the others are left to the workflow."""
        settings = {k: v for k, v in data.items() if k != "backbone"}
        name = settings.get("instance", schema_default("panoptic.model.instance"))
        method = INSTANCE_METHODS.get(name)
        own = settings.pop(name, {})
        loaded = load(method.settings, own, f"panoptic.model.{name}") if method.settings else None
        return load(cls, settings, backbone=BackboneSpec.from_dict(backbone), instance_settings=loaded)

    def to_dict(self) -> dict:
        plain = settings_of(self)
        own = plain.pop("instance_settings")
        return {**plain, **({self.instance: own} if own is not None else {}), "backbone": self.backbone.to_dict()}

    def widths(self) -> Widths:
        return Widths(adapter=self.channels, decoder=self.decoder_channels, head=self.head_channels)

    def method(self) -> InstanceMethod:
        """The instance method these settings choose, built from its own settings and the widths."""
        return INSTANCE_METHODS.get(self.instance).load()(self.instance_settings, self.widths())


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


class PanopticModel(nn.Module):
    """Forward: uint8-range images (B, 3, H, W) -> dict of semantic logits (B, C, H, W) and the
    instance method's outputs (centre/offset: center (B, 1, H, W), offset (B, 2, H, W))."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone)
        self.adapter = Adapter(self.backbone.channels, cfg.channels)
        self.semantic_decoder = Decoder(cfg.channels, cfg.decoder_channels)
        self.instance_decoder = Decoder(cfg.channels, cfg.decoder_channels)
        self.semantic_head = head(cfg.decoder_channels, cfg.head_channels, num_classes)
        self.instance_method = cfg.method()
        self.instance_heads = list(self.instance_method.heads(num_classes).items())
        for name, module in self.instance_heads:  # registered by name: checkpoints keep their keys
            self.add_module(name, module)

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
        semantic = F.interpolate(self.semantic_head(sem), size=size, mode="bilinear", align_corners=False)
        heads = {name: getattr(self, name) for name, _ in self.instance_heads}
        return {"semantic": semantic, **self.instance_method.forward(heads, ins, maps, tuple(size))}
