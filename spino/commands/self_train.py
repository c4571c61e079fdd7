"""`spino self-train`: PASTEL's self-training of the semantic head."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_dataset, add_device, add_manifest, add_settings, open_dataset
from spino.devices import resolve_device
from spino.labelgen.pseudolabel import PseudoLabelConfig
from spino.labelgen.selftrain import SelfTrainingConfig, self_train_on_neighbours

HELP = "fine-tune the semantic head on the pseudo-labels of the annotated images' nearest neighbours"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_manifest(p)
    p.add_argument("--features", required=True, type=Path, help="image descriptors written by `spino features`")
    p.add_argument("--semantic-head", required=True, type=Path)
    p.add_argument("--boundary-head", required=True, type=Path)
    add_settings(p, "--settings", "self_training")
    add_settings(p, "--labels", "pseudo_labels")
    add_device(p)
    p.add_argument("--out", required=True, type=Path, help="the self-trained semantic head")
    p.add_argument("--neighbours", required=True, type=Path, help="CSV: each annotated image's neighbours")
    p.add_argument("--losses", required=True, type=Path, help="per-step loss CSV")
    p.add_argument("--workdir", type=Path, help="each round's head and the training state: a killed run resumes")


def run(args: argparse.Namespace) -> None:
    cfg = SelfTrainingConfig.from_dict(args.settings)
    labelled, unlabelled = self_train_on_neighbours(
        cfg,
        PseudoLabelConfig.from_dict(args.labels),
        open_dataset(args),
        args.manifest,
        args.features,
        args.semantic_head,
        args.boundary_head,
        args.out,
        args.neighbours,
        args.losses,
        resolve_device(args.device),
        args.workdir,
    )
    print(
        f"{args.out}: semantic head self-trained for {cfg.rounds} round(s) on {labelled} annotated and {unlabelled} neighbour images"
    )
