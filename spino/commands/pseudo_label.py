"""`spino pseudo-label`: pseudo-labels for the images of one store shard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.commands._options import add_device, add_manifest, add_settings, add_shard
from spino.data.manifest import read_manifest
from spino.devices import resolve_device
from spino.labelgen.labellers import open_labeller
from spino.labelgen.shards import write_pseudo_label_shard
from spino.store import LabelStore, mark_shard_done

HELP = "pseudo-label the images of one shard of a store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_manifest(p)
    add_shard(p, "report JSON written when the shard is complete")
    p.add_argument("--labeller", default="spino", help="config labelgen: spino (the trained heads), primaps, ...")
    p.add_argument(
        "--input",
        dest="inputs",
        action="append",
        type=named_path,
        default=[],
        metavar="NAME=PATH",
        help="what the labeller labels from: semantic_head=, boundary_head= (and the heads its fusion needs, "
        "e.g. embedding_head=) for spino; primaps= (spino fit-primaps) for primaps",
    )
    add_settings(p, "--settings", "pseudo_labels")
    p.add_argument(
        "--spoco", type=Path, help="also write /raw, /embeddings, /segmentation of the shard to this HDF5 file"
    )
    add_device(p)


def named_path(text: str) -> tuple[str, Path]:
    """An argparse type: ``NAME=PATH``."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH")
    return name, Path(path)


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    labeller = open_labeller(args.labeller, dict(args.inputs), args.settings, device)
    store = LabelStore(args.store)
    paths = {e.image_id: e.image for e in read_manifest(args.manifest)}
    report = write_pseudo_label_shard(store, labeller, paths, args.shard, args.spoco)
    print(json.dumps(mark_shard_done(args.done, store, args.shard, {**report, "device": device})))
