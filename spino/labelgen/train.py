"""Training of the semantic and boundary heads on the k annotated images (batch 1, Adam, cosine)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spino.backbone import Backbone, BackboneSpec
from spino.checkpoint import load_checkpoint, save_checkpoint
from spino.classes import ClassSet
from spino.data.io import atomic_path
from spino.encoding import semantic_of
from spino.errors import InputError
from spino.labelgen.augment import augment
from spino.labelgen.boundaries import boundary_ids, interior
from spino.labelgen.heads import MLPHead, head_grid
from spino.losses import boundary_loss, top_k_cross_entropy
from spino.progress import progress
from spino.transforms import resize_nearest

KINDS = ("semantic", "boundary")


@dataclass(frozen=True)
class HeadConfig:
    kind: str
    hidden: tuple[int, ...]
    input_size: tuple[int, int]
    epochs: int
    lr: float
    crop_scale: tuple[float, float]
    color_jitter: float
    seed: int = 0
    top_k: float = 0.2  # semantic head only
    upsample: int = 4  # boundary head only: output at this multiple of the feature resolution
    output_stride: int = 1  # the MLP runs every output_stride pixels of its output; logits resized (1: the paper)

    @classmethod
    def from_dict(cls, kind: str, data: dict) -> HeadConfig:
        if kind not in KINDS:
            raise InputError(f"head kind must be one of {KINDS}, got {kind!r}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(
            kind=kind,
            **{
                **known,
                "hidden": tuple(data["hidden"]),
                "input_size": tuple(data["input_size"]),
                "crop_scale": tuple(data.get("crop_scale", (0.2, 1.0) if kind == "semantic" else (0.4, 1.0))),
                "color_jitter": data.get("color_jitter", 0.2),
            },
        )


def output_size(cfg: HeadConfig, backbone: Backbone, feed: tuple[int, int]) -> tuple[int, int]:
    """Semantic logits come at the input size; boundary logits at ``upsample`` x the feature size."""
    if cfg.kind == "semantic":
        return feed
    return (feed[0] // backbone.stride * cfg.upsample, feed[1] // backbone.stride * cfg.upsample)


def make_target(cfg: HeadConfig, panoptic: np.ndarray, size: tuple[int, int], class_set: ClassSet) -> torch.Tensor:
    label = resize_nearest(panoptic, size)
    if cfg.kind == "semantic":
        return torch.from_numpy(semantic_of(label).astype(np.int64))
    return torch.from_numpy(interior(boundary_ids(label, class_set)))


def train_head(
    cfg: HeadConfig,
    backbone_spec: BackboneSpec,
    samples: list[tuple[np.ndarray, np.ndarray]],
    class_set: ClassSet,
    checkpoint: str | Path,
    loss_csv: str | Path,
    device: str = "cpu",
) -> None:
    """Train one head on (image, panoptic) samples; write its checkpoint and a per-step loss CSV."""
    if not samples:
        raise InputError("no annotated images to train on")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    backbone = Backbone(backbone_spec).to(device)
    feed = backbone.round_size(*cfg.input_size)
    out_size = output_size(cfg, backbone, feed)
    grid = head_grid(out_size, cfg.output_stride)
    head = MLPHead(backbone.channels, list(cfg.hidden), class_set.num_classes if cfg.kind == "semantic" else 1).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    steps = cfg.epochs * len(samples)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    rows = []
    order = [int(i) for _ in range(cfg.epochs) for i in rng.permutation(len(samples))]
    for step, index in enumerate(progress(order, f"train {cfg.kind} head")):
        image, panoptic = samples[index]
        crop, label = augment(image, panoptic, feed, rng, cfg.crop_scale, cfg.color_jitter)
        target = make_target(cfg, label, out_size, class_set).to(device)
        logits = head(backbone(crop[None].to(device)), out_size, grid)
        if cfg.kind == "semantic":
            loss = top_k_cross_entropy(logits, target[None], cfg.top_k)
        else:
            loss = boundary_loss(logits[:, 0], target[None])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rows.append((step, step // len(samples), loss.item(), optimizer.param_groups[0]["lr"]))
        schedule.step()
    save_head(checkpoint, head.cpu(), cfg, backbone_spec, class_set, feed)
    with atomic_path(loss_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "epoch", "loss", "lr"])
        writer.writerows(rows)


def save_head(
    path: str | Path, head: MLPHead, cfg: HeadConfig, backbone_spec: BackboneSpec, class_set: ClassSet, feed: tuple[int, int]
) -> None:
    payload = {
        "state_dict": head.state_dict(),
        "in_channels": head.first.in_channels,
        "hidden": list(cfg.hidden),
        "out_channels": head.rest[-1].out_channels,
        "input_size": list(feed),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "backbone": backbone_spec.to_dict(),
        "class_set": class_set.to_dict(),
    }
    save_checkpoint(path, cfg.kind, payload)


def load_head(path: str | Path, kind: str) -> tuple[MLPHead, dict]:
    """A trained head of ``kind`` (semantic or boundary) and its metadata."""
    meta = load_checkpoint(path, kind)
    head = MLPHead(meta["in_channels"], meta["hidden"], meta["out_channels"])
    head.load_state_dict(meta["state_dict"])
    return head.eval(), meta
