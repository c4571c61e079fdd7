"""`spino train-head`: one of the heads on the frozen backbone, trained on the annotated images."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.backbone import BackboneSpec
from spino.commands._options import add_dataset, add_device, add_manifest, add_settings, open_dataset
from spino.data.manifest import annotated_samples
from spino.devices import resolve_device
from spino.labelgen.head_kinds import HEAD_KINDS, head_settings
from spino.labelgen.train import train_head

HELP = "train one of the label generator's heads (--kind) on the annotated images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    p.add_argument("kind", choices=list(HEAD_KINDS))
    add_manifest(p)
    add_settings(p, "--head", " / ".join(f"{kind}_head" for kind in HEAD_KINDS))
    add_settings(p, "--backbone", "backbone")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--losses", required=True, type=Path, help="per-step loss CSV")
    p.add_argument("--workdir", type=Path, help="training state, saved as it trains: a killed run resumes from it")
    add_device(p)


def run(args: argparse.Namespace) -> None:
    dataset = open_dataset(args)
    samples = annotated_samples(dataset, args.manifest)
    cfg = head_settings(args.kind, args.head)
    spec = BackboneSpec.from_dict(args.backbone)
    device = resolve_device(args.device)
    train_head(cfg, spec, samples, dataset.class_set, args.checkpoint, args.losses, device, args.workdir)
    print(f"{args.checkpoint}: {args.kind} head trained on {len(samples)} images")
