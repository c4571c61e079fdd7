"""`spino features`: one descriptor per image from the frozen backbone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.backbone import Backbone, BackboneSpec
from spino.commands._options import add_dataset, add_device, add_settings, add_unlabelled_images, dataset_records
from spino.devices import resolve_device
from spino.features import pooled_features, write_features

HELP = "one descriptor per image: frozen backbone features, mean-pooled, L2-normalised (HDF5)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_unlabelled_images(p)
    add_settings(p, "--backbone", "backbone")
    p.add_argument(
        "--input-size", type=int, nargs=2, required=True, metavar=("H", "W"), help="images are resized to this"
    )
    add_device(p)
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    records, _ = dataset_records(args)
    spec = BackboneSpec.from_dict(args.backbone)
    device = resolve_device(args.device)
    features = pooled_features(Backbone(spec), [r.image for r in records], tuple(args.input_size), device)
    meta = {"backbone": json.dumps(spec.to_dict()), "input_size": list(args.input_size)}
    write_features(args.out, [r.image_id for r in records], [r.split for r in records], features, meta)
    print(f"{args.out}: {features.shape[1]}-dimensional descriptors of {len(records)} images")
