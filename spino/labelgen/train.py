"""Training of a head on the k annotated images (batch 1, Adam, cosine); what each kind of head learns
(channels, output size, target, loss) is its class in spino.labelgen.head_kinds."""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from spino.backbone import Backbone, BackboneSpec
from spino.checkpoint import load_checkpoint, register_checkpoint_kind, save_checkpoint
from spino.classes import ClassSet
from spino.data.io import resize_nearest, write_csv
from spino.errors import InputError
from spino.labelgen.augment import augment
from spino.labelgen.head_kinds import HEAD_KINDS, HeadSettings
from spino.labelgen.mlp_head import MLPHead, head_grid
from spino.progress import progress
from spino.training_state import TrainingState, settings_hash


class HeadTrainer:
    """One head on its frozen backbone, with what a training step needs: the feed size, the output
    grid, the Adam optimiser and the cosine schedule over ``steps``."""

    def __init__(
        self, cfg: HeadSettings, backbone_spec: BackboneSpec, class_set: ClassSet, steps: int, device: str = "cpu"
    ):
        self.cfg, self.class_set, self.device = cfg, class_set, device
        self.kind = HEAD_KINDS[cfg.kind].load()(cfg, class_set)  # what this kind of head learns
        self.backbone = Backbone(backbone_spec).to(device)
        self.feed = self.backbone.round_size(*cfg.input_size)
        self.out_size = self.kind.output_size(self.backbone, self.feed)
        self.grid = head_grid(self.out_size, cfg.output_stride)
        self.head = MLPHead(self.backbone.channels, list(cfg.hidden), self.kind.out_channels()).to(device)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
        )

    def loss(self, image: np.ndarray, panoptic: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """The head's loss on one randomly cropped, flipped and jittered (image, panoptic) sample."""
        crop, label = augment(image, panoptic, self.feed, rng, self.cfg.crop_scale, self.cfg.color_jitter)
        target = self.kind.target(resize_nearest(label, self.out_size)).to(self.device)
        crop = crop[None].to(self.device)
        logits = self.head(self.backbone(crop), self.out_size, self.grid)
        return self.kind.loss(self, crop, logits, target, rng)

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser and schedule step; the learning rate the step used."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        return lr

    def save(self, path: str | Path, backbone_spec: BackboneSpec) -> None:
        save_head(path, copy.deepcopy(self.head).cpu(), self.cfg, backbone_spec, self.class_set, self.feed)


CHECKPOINT_EVERY = 25  # steps between training states: a head step is short, the state small
register_checkpoint_kind("head-training", "a head's training state")


def train_head(
    cfg: HeadSettings,
    backbone_spec: BackboneSpec,
    samples: list[tuple[np.ndarray, np.ndarray]],
    class_set: ClassSet,
    checkpoint: str | Path,
    loss_csv: str | Path,
    device: str = "cpu",
    workdir: str | Path | None = None,
) -> None:
    """Train one head on (image, panoptic) samples; write its checkpoint and a per-step loss CSV.
    With ``workdir``, the training state is saved there every CHECKPOINT_EVERY steps and a killed
    run resumes from it (on the CPU to the same weights, bit for bit: the weights, Adam's moments,
    the schedule and the random generator's state are all saved)."""
    if not samples:
        raise InputError("no annotated images to train on")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    trainer = HeadTrainer(cfg, backbone_spec, class_set, cfg.epochs * len(samples), device)
    samples = trainer.kind.training_samples(samples)
    order = [int(i) for _ in range(cfg.epochs) for i in rng.permutation(len(samples))]
    state = _training_state(trainer, backbone_spec, samples, workdir, rng)
    for step in progress(range(state.step, len(order)), f"train {cfg.kind} head"):
        loss = trainer.loss(*samples[order[step]], rng)
        lr = trainer.step(loss)
        state.history.append((step, step // len(samples), loss.item(), lr))
        state.step = step + 1
        if workdir is not None and (state.step % CHECKPOINT_EVERY == 0 or state.step == len(order)):
            state.extra = {"schedule": trainer.schedule.state_dict(), "rng": rng.bit_generator.state}
            state.save(trainer.head, trainer.optimizer, finished=state.step == len(order))
    trainer.save(checkpoint, backbone_spec)
    write_csv(loss_csv, ["step", "epoch", "loss", "lr"], state.history)


def samples_digest(samples: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """sha256 of the training samples' pixels and labels: part of a training state's key, so that a
    relabelled image starts training again instead of resuming."""
    contents = hashlib.sha256()
    for image, panoptic in samples:
        contents.update(image.tobytes())
        contents.update(panoptic.tobytes())
    return contents.hexdigest()


def _training_state(
    trainer: HeadTrainer,
    backbone_spec: BackboneSpec,
    samples: list[tuple[np.ndarray, np.ndarray]],
    workdir: str | Path | None,
    rng: np.random.Generator,
) -> TrainingState:
    """Where an interrupted run of this head left off (weights, optimizer, schedule and ``rng``
    restored), or step 0: the same settings, backbone, classes and samples, not finished."""
    if workdir is None:
        return TrainingState(Path(), "")
    signature = settings_hash(
        asdict(trainer.cfg), backbone_spec.to_dict(), trainer.class_set.to_dict(), samples_digest(samples)
    )
    path = Path(workdir) / f"{trainer.cfg.kind}.last.pt"
    state = TrainingState.resume(path, signature, trainer.head, trainer.optimizer, kind="head-training")
    if state.step:
        trainer.schedule.load_state_dict(state.extra["schedule"])
        rng.bit_generator.state = state.extra["rng"]
        state.history = [tuple(row) for row in state.history]
    return state


def save_head(
    path: str | Path,
    head: MLPHead,
    cfg: HeadSettings,
    backbone_spec: BackboneSpec,
    class_set: ClassSet,
    feed: tuple[int, int],
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
