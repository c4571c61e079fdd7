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

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from spino.checkpoint import register_checkpoint_kind
from spino.classes import ClassSet
from spino.config import load, section
from spino.data.io import write_csv
from spino.data.manifest import read_manifest
from spino.devices import amp_dtype
from spino.errors import InputError
from spino.losses import top_k_cross_entropy
from spino.panoptic.confidence import ConfidenceConfig
from spino.panoptic.distributed import Distributed
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.postprocess import PostprocessConfig
from spino.panoptic.predict import prediction_stats
from spino.panoptic.sampler import Augment, MixedBatchData, Sample, batch_loader, rank_slots, samples_from
from spino.panoptic.saved_model import save_model
from spino.panoptic.targets import TargetConfig
from spino.progress import log
from spino.provenance import file_digest
from spino.store import LabelStore
from spino.training_state import TrainingState, settings_hash

register_checkpoint_kind("panoptic-training", "a panoptic training state")


@section("panoptic.train.schedule")
class Schedule:
    """Learning rate over training: linear warm-up from ``warmup_factor`` x lr, then constant or
    poly decay ``(1 - step / steps) ** power`` (Panoptic-DeepLab: poly 0.9, no warm-up; SPINO states
    a fixed Adam lr of 1e-4)."""

    kind: str  # constant | poly
    power: float
    warmup_steps: int
    warmup_factor: float

    def factor(self, step: int, steps: int) -> float:
        decay = (1 - step / steps) ** self.power if self.kind == "poly" else 1.0
        if step < self.warmup_steps:
            ramp = step / self.warmup_steps
            decay *= self.warmup_factor * (1 - ramp) + ramp
        return decay


@section("panoptic.train")
class TrainConfig:
    steps: int
    batch_size: int  # the global batch, split evenly over the GPUs
    lr: float
    schedule: Schedule
    seed: int
    top_k: float
    augment: Augment
    amp: bool  # autocast on GPU: bf16, or fp16 with a gradient scaler where bf16 is not native
    checkpoint_every: int
    val_every: int
    val_images: int
    targets: TargetConfig
    confidence: ConfidenceConfig
    postprocess: PostprocessConfig

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return load(cls, data)


def loss_terms(method: InstanceMethod) -> tuple[str, ...]:
    """The columns of losses.csv after step and lr: the total, the semantic loss, the method's terms."""
    return ("loss", "semantic", *method.loss_terms)


def losses(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: TrainConfig, method: InstanceMethod
) -> dict[str, torch.Tensor]:
    """The total loss and its terms: the semantic head's top-k cross-entropy and the instance method's
    terms, each times its weight."""
    soft = (batch["semantic_runner_up"], batch["semantic_runner_up_share"]) if "semantic_runner_up" in batch else None
    semantic = top_k_cross_entropy(
        out["semantic"].float(), batch["semantic"], cfg.top_k, batch["semantic_weights"], soft
    )
    terms = method.losses(out, batch)
    weights = method.loss_weights()
    total = semantic
    for name in method.loss_terms:
        total = total + weights[name] * terms[name]
    return {"loss": total, "semantic": semantic, **terms}


def validate(model: PanopticModel, samples: list[Sample], class_set: ClassSet, cfg: TrainConfig) -> dict:
    """PQ/SQ/RQ/mIoU of the model on ground-truth samples, as the final scores: predicted at full resolution."""
    model.eval()
    items = ((sample.image_path, sample.store.panoptic(sample.index)) for sample in samples)
    stats = prediction_stats(model, items, class_set, cfg.postprocess)
    model.train()
    s = stats.summary(class_set)
    return {"pq": s["all"]["pq"], "sq": s["all"]["sq"], "rq": s["all"]["rq"], "miou": s["miou"], "images": stats.images}


@dataclass(frozen=True)
class TrainingData:
    """What the panoptic model learns from: the annotated images' ground truth (one in every batch),
    the pseudo-labelled images, the ground truth it is validated on, and the digests of the files
    they come from (``provenance``: part of the resume key, so new labels retrain from step 0)."""

    class_set: ClassSet
    ground_truth: list[Sample]
    pseudo: list[Sample]
    validation: list[Sample] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_stores(
        cls, manifest: Path, ground_truth: Path, pseudo_labels: Path, train_splits: list[str], val_splits: list[str]
    ) -> TrainingData:
        """As the workflow trains: the annotated images' ground truth, the pseudo-labels of the other
        images of ``train_splits``, validation on the labelled not-annotated images of ``val_splits``;
        the manifest's and the stores' digests as provenance."""
        entries = read_manifest(manifest)
        gt, pseudo = LabelStore(ground_truth), LabelStore(pseudo_labels)
        annotated = [e.image_id for e in entries if e.annotated]
        pseudo_ids = set(pseudo.image_ids)
        train_ids = [
            e.image_id for e in entries if e.split in train_splits and not e.annotated and e.image_id in pseudo_ids
        ]
        val_ids = [e.image_id for e in entries if e.split in val_splits and e.has_gt and not e.annotated]
        return cls(
            gt.class_set,
            samples_from(gt, annotated),
            samples_from(pseudo, train_ids),
            samples_from(gt, val_ids),
            {"manifest": file_digest(manifest), "ground_truth": gt.digest, "pseudo_labels": pseudo.digest},
        )


def train_panoptic(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    data: TrainingData,
    workdir: str | Path,
    out: str | Path,
    device: str = "auto",
    workers: int = 2,
) -> None:
    """Train (or resume), then write the final checkpoint ``out`` and, beside it, losses.csv and validation.csv.

    The data's provenance joins the resume key; ``workers`` (DataLoader processes building batches)
    does not: it changes no batch.
    """
    env = Distributed(device)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    class_set = data.class_set
    ids = [s.image_id for s in data.ground_truth + data.pseudo]
    signature = settings_hash(asdict(cfg), model_cfg.to_dict(), class_set.to_dict(), ids, data.provenance)
    torch.manual_seed(cfg.seed)
    model = PanopticModel(model_cfg, class_set.num_classes).to(env.device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    state = TrainingState.resume(Path(workdir) / "last.pt", signature, model, optimizer)
    log_start(state.step, env)
    model, net = env.wrap(model)
    method = model.instance_method
    batches_of = MixedBatchData(
        data.ground_truth,
        data.pseudo,
        class_set,
        model_cfg.input_size,
        cfg.batch_size,
        cfg.seed,
        cfg.augment,
        cfg.targets,
        method,
        cfg.confidence,
    )
    if cfg.confidence.used and data.pseudo and not data.pseudo[0].store.has_confidence:
        log("panoptic.train.confidence: the pseudo-labels hold no confidence (an older store): every pixel weighs 1")
    elif cfg.confidence.semantic == "soft" and data.pseudo and not data.pseudo[0].store.has_runner_up:
        raise InputError(
            f"{data.pseudo[0].store.path}: panoptic.train.confidence.semantic: soft needs runner-up classes"
            " (pseudo-labels written with pseudo_labels.top2: true)"
        )
    slots = rank_slots(cfg.batch_size, env.rank, env.world)
    batches = batch_loader(batches_of, state.step, cfg.steps, slots, workers, pin_memory=env.device.type == "cuda")
    precision = Precision.of(env.device, cfg.amp)
    model.train()
    for step, batch in enumerate(batches, start=state.step):
        state.history.append(train_step(net, optimizer, batch, step, cfg, env, method, precision))
        state.step = step + 1
        if env.main:
            after_step(model, optimizer, state, data.validation, class_set, cfg, env.device)
        env.barrier()
    if env.main:
        save_model(out, model, model_cfg, class_set, cfg.postprocess)
        write_csv(Path(out).parent / "losses.csv", ["step", "lr", *loss_terms(method)], state.history)
        rows = [list(r.values()) for r in state.validation]
        write_csv(Path(out).parent / "validation.csv", ["step", "pq", "sq", "rq", "miou", "images"], rows)
        state.save(model, optimizer, finished=True)  # only now: a run killed before its outputs were written resumes
    env.barrier()
    env.close()


def log_start(step: int, env: Distributed) -> None:
    if step == 0:
        log(f"training from scratch (step 0) on {env.device} ({env.world} process(es))")
    if "SLURM_JOB_ID" in os.environ:
        gpus = os.environ.get("SLURM_JOB_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES") or "none"
        log(f"SLURM job {os.environ['SLURM_JOB_ID']} on {os.environ.get('SLURMD_NODENAME', '?')}, GPUs granted: {gpus}")
    if env.device.type == "cpu":
        log("no GPU: training on the CPU")


@dataclass
class Precision:
    """Autocast dtype (None: fp32) and the gradient scaler fp16 needs (disabled otherwise)."""

    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, device: torch.device, amp: bool) -> Precision:
        dtype = amp_dtype(device) if amp else None
        if dtype == torch.float16:
            log(f"{device} computes bf16 only by emulation: mixed precision in fp16 with a gradient scaler")
        return cls(dtype, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16))


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict,
    step: int,
    cfg: TrainConfig,
    env: Distributed,
    method: InstanceMethod,
    precision: Precision,
) -> list:
    """One optimiser step at the schedule's learning rate; the history row: step, lr, the loss terms
    averaged over the ranks (what one process on the global batch would log)."""
    batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
    lr = cfg.lr * cfg.schedule.factor(step, cfg.steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(env.device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
        outputs = net(batch["image"])
    parts = losses(outputs, batch, cfg, method)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(parts["loss"]).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    logged = env.mean(torch.stack([parts[k].detach().float() for k in loss_terms(method)])).tolist()
    return [step, lr] + [round(v, 6) for v in logged]


def after_step(
    model: PanopticModel,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    validation: list[Sample],
    class_set: ClassSet,
    cfg: TrainConfig,
    device: torch.device,
) -> None:
    """The main process's hooks after a step: validation every ``val_every`` steps, the training state
    every ``checkpoint_every`` (and both at the last step)."""
    done, last = state.step, state.step == cfg.steps
    if validation and (done % cfg.val_every == 0 or last):
        row = {"step": done, **validate(model, validation[: cfg.val_images], class_set, cfg)}
        state.validation.append(row)
        log(f"step {done}: validation PQ {100 * row['pq']:.1f}  mIoU {100 * row['miou']:.1f}")
    if done % cfg.checkpoint_every == 0 or last:
        state.save(model, optimizer)
        log(f"step {done}/{cfg.steps}: loss {state.history[-1][2]:.4f}, checkpoint written")
