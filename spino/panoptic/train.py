"""Training of the panoptic model: mixed batches, AMP on GPU, DDP under torchrun, resumable.

Checkpoints (trainable weights, optimizer, step, loss history) are written every
``checkpoint_every`` steps to ``<workdir>/last.pt``. A rerun continues from there only if it is the
same run, interrupted: same settings, same image ids, and the same *content* of what it trains on
(the digests gather recorded for the label stores, and the manifest's), and the run had not
finished. Anything else (new pseudo-labels, ``--forcerun``, a finished run) starts at step 0.
With the same seed on CPU, a resumed run ends with the same weights as an uninterrupted one:
batches depend only on (seed, step, slot), never on the DataLoader workers that build them, and the
learning rate only on the step.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from spino.checkpoint import load_checkpoint, save_checkpoint
from spino.classes import ClassSet
from spino.data.io import atomic_path, read_image
from spino.losses import top_k_cross_entropy, weighted_mean
from spino.metrics import PanopticStats
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.postprocess import PostprocessConfig
from spino.panoptic.predict import predict_panoptic
from spino.panoptic.sampler import Augment, MixedBatchData, Sample, batch_loader, rank_slots
from spino.panoptic.targets import TargetConfig
from spino.provenance import text_digest
from spino.transforms import image_tensor


@dataclass(frozen=True)
class Schedule:
    """Learning rate over training: linear warm-up from ``warmup_factor`` x lr, then constant or
    poly decay ``(1 - step / steps) ** power`` (Panoptic-DeepLab: poly 0.9, no warm-up; SPINO states
    a fixed Adam lr of 1e-4)."""

    kind: str = "constant"  # constant | poly
    power: float = 0.9
    warmup_steps: int = 0
    warmup_factor: float = 0.001

    def factor(self, step: int, steps: int) -> float:
        decay = (1 - step / steps) ** self.power if self.kind == "poly" else 1.0
        if step < self.warmup_steps:
            ramp = step / self.warmup_steps
            decay *= self.warmup_factor * (1 - ramp) + ramp
        return decay


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000
    batch_size: int = 8  # the global batch, split evenly over the GPUs
    lr: float = 1e-4
    schedule: Schedule = field(default_factory=Schedule)
    seed: int = 0
    top_k: float = 0.2
    center_weight: float = 20.0
    offset_weight: float = 0.1
    augment: Augment = field(default_factory=Augment)
    amp: bool = True  # bf16 autocast on GPU
    checkpoint_every: int = 500
    val_every: int = 1000
    val_images: int = 50
    targets: TargetConfig = field(default_factory=TargetConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        nested = {"schedule": Schedule, "augment": Augment, "targets": TargetConfig, "postprocess": PostprocessConfig}
        plain = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in nested}
        return cls(**plain, **{k: kind(**data.get(k, {})) for k, kind in nested.items()})


def settings_hash(*parts: dict) -> str:
    return text_digest(json.dumps(parts, sort_keys=True, default=str))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Distributed:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) or a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.world > 1:
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


LOSS_TERMS = ("loss", "semantic", "center", "offset")


def global_mean(parts: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    """The loss terms averaged over all processes: what one process on the global batch would log."""
    values = torch.stack([parts[k].detach().float() for k in LOSS_TERMS])
    if world > 1:
        dist.all_reduce(values)
        values /= world
    return dict(zip(LOSS_TERMS, values.tolist()))


def losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: TrainConfig) -> dict[str, torch.Tensor]:
    semantic = top_k_cross_entropy(out["semantic"].float(), batch["semantic"], cfg.top_k, batch["semantic_weights"])
    center = weighted_mean((out["center"].float() - batch["center"]) ** 2, batch["center_weights"])
    offset = weighted_mean((out["offset"].float() - batch["offset"]).abs(), batch["offset_weights"].expand_as(batch["offset"]))
    total = semantic + cfg.center_weight * center + cfg.offset_weight * offset
    return {"loss": total, "semantic": semantic, "center": center, "offset": offset}


def validate(model: PanopticModel, samples: list[Sample], class_set: ClassSet, cfg: TrainConfig, device: torch.device) -> dict:
    """PQ/SQ/RQ/mIoU of the model on ground-truth samples, as the final scores: predicted at full resolution."""
    model.eval()
    stats = PanopticStats(class_set.num_classes)
    for sample in samples:
        image = image_tensor(read_image(sample.image_path), model.cfg.input_size, device)
        label = sample.store.panoptic(sample.index)
        stats.update(label, predict_panoptic(model, image, class_set, cfg.postprocess, label.shape), class_set)
    model.train()
    s = stats.summary(class_set)
    return {"pq": s["all"]["pq"], "sq": s["all"]["sq"], "rq": s["all"]["rq"], "miou": s["miou"], "images": stats.images}


def train_panoptic(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    class_set: ClassSet,
    ground_truth: list[Sample],
    pseudo: list[Sample],
    validation: list[Sample],
    workdir: str | Path,
    out: str | Path,
    device: str = "auto",
    provenance: dict | None = None,
    workers: int = 2,
) -> None:
    """Train (or resume), then write the final checkpoint ``out`` and, beside it, losses.csv and validation.csv.

    ``provenance`` (digests of the stores and manifest trained on) joins the resume key; ``workers``
    (DataLoader processes building batches) does not: it changes no batch.
    """
    env = Distributed(device)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    signature = settings_hash(
        asdict(cfg), model_cfg.to_dict(), class_set.to_dict(), [s.image_id for s in ground_truth + pseudo], provenance or {}
    )
    torch.manual_seed(cfg.seed)
    model = PanopticModel(model_cfg, class_set.num_classes).to(env.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    start, history, val_rows = 0, [], []
    last = workdir / "last.pt"
    if last.is_file():
        state = load_checkpoint(last, "panoptic-training")
        if state["signature"] != signature:
            log(f"ignoring checkpoint {last}: it was trained with other settings or on other labels")
        elif state["finished"]:
            log(f"ignoring checkpoint {last}: that run finished; this one is asked to train again")
        else:
            model.load_trainable_state(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history, val_rows = state["step"], state["history"], state["validation"]
            log(f"resuming from checkpoint {last} at step {start}")
    if start == 0:
        log(f"training from scratch (step 0) on {env.device} ({env.world} process(es))")
    if "SLURM_JOB_ID" in os.environ:
        gpus = os.environ.get("SLURM_JOB_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES") or "none"
        log(f"SLURM job {os.environ['SLURM_JOB_ID']} on {os.environ.get('SLURMD_NODENAME', '?')}, GPUs granted: {gpus}")
    if env.device.type == "cpu":
        log("no GPU: training on the CPU")
    net = model
    if env.world > 1:
        if env.device.type == "cuda":  # batch statistics over all GPUs (SyncBatchNorm is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    data = MixedBatchData(ground_truth, pseudo, class_set, model_cfg.input_size, cfg.batch_size, cfg.seed, cfg.augment, cfg.targets)
    slots = rank_slots(cfg.batch_size, env.rank, env.world)
    batches = batch_loader(data, start, cfg.steps, slots, workers, pin_memory=env.device.type == "cuda")
    amp = cfg.amp and env.device.type == "cuda"

    def save_state(done: int, finished: bool) -> None:
        save_checkpoint(last, "panoptic-training", {
            "signature": signature, "step": done, "finished": finished, "model": model.trainable_state(),
            "optimizer": optimizer.state_dict(), "history": history, "validation": val_rows,
        })

    model.train()
    for step, batch in enumerate(batches, start=start):
        batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
        lr = cfg.lr * cfg.schedule.factor(step, cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = net(batch["image"])
        parts = losses(outputs, batch, cfg)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        logged = global_mean(parts, env.world)
        history.append([step, lr] + [round(logged[k], 6) for k in LOSS_TERMS])
        done = step + 1
        if env.main and validation and (done % cfg.val_every == 0 or done == cfg.steps):
            row = {"step": done, **validate(model, validation[: cfg.val_images], class_set, cfg, env.device)}
            val_rows.append(row)
            log(f"step {done}: validation PQ {100 * row['pq']:.1f}  mIoU {100 * row['miou']:.1f}")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            if env.main:
                save_state(done, finished=False)
                log(f"step {done}/{cfg.steps}: loss {history[-1][2]:.4f}, checkpoint written")
    if env.main:
        save_model(out, model, model_cfg, class_set, cfg)
        write_csv(Path(out).parent / "losses.csv", ["step", "lr", *LOSS_TERMS], history)
        write_csv(Path(out).parent / "validation.csv", ["step", "pq", "sq", "rq", "miou", "images"], [list(r.values()) for r in val_rows])
        save_state(cfg.steps, finished=True)  # only now: a run killed before its outputs were written resumes
    env.close()


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def save_model(path: str | Path, model: PanopticModel, model_cfg: ModelConfig, class_set: ClassSet, cfg: TrainConfig) -> None:
    payload = {
        "model": model.trainable_state(),
        "model_config": model_cfg.to_dict(),
        "class_set": class_set.to_dict(),
        "postprocess": asdict(cfg.postprocess),
    }
    save_checkpoint(path, "panoptic", payload)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[PanopticModel, ClassSet, PostprocessConfig]:
    """A trained panoptic model from its checkpoint (weights_only: no arbitrary unpickling)."""
    state = load_checkpoint(path, "panoptic")
    cfg = state["model_config"]
    model_cfg = ModelConfig.from_dict(cfg, cfg["backbone"])
    class_set = ClassSet.from_dict(state["class_set"], source=str(path))
    model = PanopticModel(model_cfg, class_set.num_classes)
    model.load_trainable_state(state["model"])
    return model.to(device).eval(), class_set, PostprocessConfig(**state["postprocess"])

