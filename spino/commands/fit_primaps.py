"""`spino fit-primaps`: label-free class prototypes from principal masks (PriMaPs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.backbone import BackboneSpec
from spino.commands._options import add_dataset, add_device, add_manifest, add_settings, open_dataset
from spino.config import load
from spino.data.manifest import read_manifest
from spino.devices import resolve_device
from spino.labelgen.labellers import PrimapsConfig
from spino.labelgen.primaps import fit_primaps

HELP = "label-free: fit one prototype per class to the principal masks of the images (PriMaPs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_manifest(p)
    add_settings(p, "--settings", "primaps")
    add_settings(p, "--backbone", "backbone")
    add_device(p)
    p.add_argument("--out", required=True, type=Path, help="prototype checkpoint")


def run(args: argparse.Namespace) -> None:
    cfg = load(PrimapsConfig, args.settings, "primaps")
    paths = [e.image for e in read_manifest(args.manifest) if e.split in cfg.fit_splits]
    class_set = open_dataset(args).class_set
    fit_primaps(cfg, BackboneSpec.from_dict(args.backbone), paths, class_set, args.out, resolve_device(args.device))
    print(f"{args.out}: {class_set.num_classes} PriMaPs prototypes fitted to the masks of {len(paths)} images")
