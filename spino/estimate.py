"""What a run will take on this machine, said before it starts (``spino init``) and set beside what it
took (the report's time table).

Each rule's seconds are its work (images, pixels, training steps) times a rate, plus a start-up per
job (Python, torch, the backbone). The rates were measured on the machine this project is developed
on (2-core AMD EPYC, the ``cpu`` profile's settings; docs/results.md) from the Snakemake benchmark
files of two runs, the demo and config/examples/cityscapes-mini.yaml; another machine's are those
scaled by its speed on a fixed matrix product against that machine's (``machine_speed``). GPU rates
are not modelled: a config that puts a stage on a GPU gets no estimate for that stage.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from spino.config import images_per_shard

MEGA = 1e6


@dataclass(frozen=True)
class Work:
    """What a run has to do, from the survey (init) or the manifest (report)."""

    images: dict[str, int]  # split -> images
    labelled: dict[str, int]  # split -> labelled images
    annotated: int
    size: tuple[int, int]  # the working size (H, W)


@dataclass(frozen=True)
class Rate:
    """Seconds per unit of a rule's work on the reference machine, and per job at start-up."""

    per_unit: float
    per_job: float


# Fitted on the reference machine from the demo and cityscapes-mini (``benchmarks/estimate.py``, non-negative
# least squares of each rule's benchmarked seconds; "other" from the rest of each run's wall time); units
# in ``rule_work``. The two heads, fitted apart, agree on the MLP's rate (0.142 and 0.143 s per 1e9).
RATES = {
    "train_semantic_head": Rate(per_unit=0.1421, per_job=0.486),  # per_job: per step
    "train_boundary_head": Rate(per_unit=0.1434, per_job=0.0645),
    "pseudo_label": Rate(per_unit=2.928, per_job=16.5),
    "train_panoptic": Rate(per_unit=2.748, per_job=0.0),
    "predict": Rate(per_unit=0.5895, per_job=4.95),
    "other": Rate(per_unit=1.02, per_job=1.93),
}
# The reference machine's seconds for ``speed_probe`` (it read 0.18 to 0.23 over the hour of those runs).
REFERENCE_PROBE_SECONDS = 0.20
GPU_STAGES = {"train_semantic_head": "heads", "train_boundary_head": "heads", "pseudo_label": "pseudo_label"}
GPU_STAGES |= {"train_panoptic": "panoptic", "predict": "predict"}


def rule_work(config: dict, work: Work) -> dict[str, tuple[float, int]]:
    """Each rule's units of work and its count of jobs (for head training: of steps, epochs x annotated
    images, each with a cost of its own): head training in steps x the MLP's work per step (mlp_work,
    in 1e9); pseudo-labels in images x working megapixels x the scales' pixel factors; panoptic
    training in (steps x batch + validation images) x the model's megapixels; predictions in images
    x working megapixels; the rest (index, ground truth, stores, scores, report) in images x working
    megapixels, in about ten jobs."""
    shards = config["stores"]["images_per_shard"]
    megapixels = work.size[0] * work.size[1] / MEGA
    jobs = {}
    for kind in ("semantic", "boundary"):
        head = config[f"{kind}_head"]
        steps = head["epochs"] * work.annotated
        jobs[f"train_{kind}_head"] = (steps * mlp_work(head, kind) / 1e9, steps)
    labels = config["pseudo_labels"]
    pseudo = sum(work.images.get(s, 0) for s in labels["splits"])
    scales = sum(s * s for s in set(labels["semantic_scales"]) | set(labels["boundary_scales"]))
    jobs["pseudo_label"] = (pseudo * megapixels * scales, math.ceil(pseudo / images_per_shard(shards, "pseudo_labels")))
    panoptic = config["panoptic"]
    train, model = panoptic["train"], panoptic["model"]
    scored = sum(work.labelled.get(s, 0) for s in panoptic["eval_splits"])
    validations = (train["steps"] // train["val_every"]) * min(train["val_images"], scored)
    model_mp = model["input_size"][0] * model["input_size"][1] / MEGA
    jobs["train_panoptic"] = ((train["steps"] * train["batch_size"] + validations) * model_mp, 1)
    predicted = sum(work.images.get(s, 0) for s in panoptic["eval_splits"])
    jobs["predict"] = (predicted * megapixels, math.ceil(predicted / images_per_shard(shards, "predictions")))
    jobs["other"] = (sum(work.images.values()) * megapixels, 10)
    return jobs


def mlp_work(head: dict, kind: str, feature_stride: int = 8) -> float:
    """A head's MLP work per training step: the positions it sees x the products of its consecutive
    hidden widths. Positions: input pixels / output_stride^2, for the boundary head on features upsampled
    from ``feature_stride`` (EfficientNet's 8; the CPU profile's backbone). Fitted on the reference runs,
    this term and a per-step constant explain both heads' steps, the backbone's forward adding nothing
    measurable beside them."""
    stride = head["output_stride"] * (feature_stride / head["upsample"] if kind == "boundary" else 1)
    positions = head["input_size"][0] * head["input_size"][1] / stride**2
    hidden = head["hidden"]
    return positions * sum(a * b for a, b in zip(hidden, hidden[1:]))


def estimate(config: dict, work: Work, speed: float = 1.0, gpu: bool = False) -> dict[str, float]:
    """Seconds of each rule (summed over its jobs) on a machine ``speed`` times the reference's; on a
    machine with a ``gpu``, rules config ``gpus`` puts on it are left out (not modelled; without one,
    they fall back to the CPU)."""
    seconds = {}
    for rule, (units, jobs) in rule_work(config, work).items():
        if gpu and rule in GPU_STAGES and config["gpus"][GPU_STAGES[rule]]:
            continue
        rate = RATES[rule]
        seconds[rule] = (rate.per_unit * units + rate.per_job * jobs) / speed
    return seconds


def wall_seconds(seconds: dict[str, float], cores: int) -> float:
    """The run's wall time: rules one after another, a rule's one-thread shard jobs side by side on
    the cores, the heads side by side where there are two cores (the workflow shares the cores among
    them), panoptic training on every core."""
    shards = ("pseudo_label", "predict")
    heads = [seconds[r] for r in ("train_semantic_head", "train_boundary_head") if r in seconds]
    rest = sum(s / (max(1, cores) if rule in shards else 1) for rule, s in seconds.items() if "_head" not in rule)
    return rest + (max(heads, default=0) if cores >= 2 else sum(heads))


def speed_probe(repeats: int = 3) -> float:
    """Seconds of a fixed float32 matrix product on one thread (the best of ``repeats``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(768, 768, generator=torch.Generator().manual_seed(0))
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(20):
                a @ a
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best


def machine_speed() -> float:
    """This machine's speed relative to the reference machine's (2.0: twice as fast)."""
    return REFERENCE_PROBE_SECONDS / speed_probe()


def describe_cost(config: dict, work: Work, cores: int | None = None) -> str:
    """The run's estimated time on this machine in a line, with what it rests on."""
    cores = cores or os.cpu_count() or 1
    import torch

    speed = machine_speed()
    seconds = estimate(config, work, speed, gpu=torch.cuda.is_available())
    on_gpu = sorted({stage for rule, stage in GPU_STAGES.items() if rule not in seconds})
    if on_gpu:
        return (
            f"no time estimate: stages {', '.join(on_gpu)} run on GPUs, whose rates spino has not modelled"
            " (docs/results.md has an H100's figures)"
        )
    shards = wall_seconds({"pseudo_label": seconds["pseudo_label"]}, cores)
    heads = wall_seconds({r: seconds[r] for r in ("train_semantic_head", "train_boundary_head")}, cores)
    return (
        f"estimated time on this machine ({cores} cores): about {_minutes(wall_seconds(seconds, cores))} (heads"
        f" {_minutes(heads)}, pseudo-labels {_minutes(shards)}, panoptic model {_minutes(seconds['train_panoptic'])});"
        " from per-image and per-step rates measured on a 2-core reference CPU, scaled by this machine's speed"
        f" on a matrix product ({speed:.2f}x the reference's): a guide to within about a third, not a promise"
    )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
