"""`spino train-panoptic`: the panoptic model, trained on pseudo-labels mixed with ground truth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spino.commands._options import add_device, add_manifest, add_settings
from spino.config import schema_default
from spino.panoptic.distributed import relaunch_under_torchrun
from spino.panoptic.model import ModelConfig
from spino.panoptic.train import TrainConfig, TrainingData, train_panoptic

HELP = "train the panoptic model on pseudo-labels mixed with ground truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_manifest(p)
    p.add_argument("--pseudo-labels", required=True, type=Path)
    p.add_argument("--ground-truth", required=True, type=Path)
    p.add_argument("--train-splits", nargs="+", required=True)
    p.add_argument("--val-splits", nargs="*", default=[], help="splits of the validation images (none: no validation)")
    add_settings(p, "--model", "panoptic.model")
    add_settings(p, "--train", "panoptic.train")
    add_settings(p, "--backbone", "backbone")
    p.add_argument("--workdir", required=True, type=Path, help="checkpoints to resume from, loss and validation CSVs")
    p.add_argument("--out", required=True, type=Path, help="final checkpoint")
    add_device(p)
    p.add_argument("--gpus", type=int, default=1, help="GPUs on this node; more than one launches torchrun")
    p.add_argument(
        "--workers",
        type=int,
        default=schema_default("panoptic.loader_workers"),
        help="DataLoader processes building batches per GPU (0: none); changes no batch",
    )


def run(args: argparse.Namespace) -> None:
    relaunch_under_torchrun(args.gpus, sys.argv[1:], args.device)  # returns only in a process that trains
    data = TrainingData.from_stores(
        args.manifest, args.ground_truth, args.pseudo_labels, args.train_splits, args.val_splits
    )
    train_panoptic(
        TrainConfig.from_dict(args.train),
        ModelConfig.from_dict(args.model, args.backbone),
        data,
        args.workdir,
        args.out,
        args.device,
        args.workers,
    )
