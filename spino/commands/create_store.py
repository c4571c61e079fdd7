"""`spino create-store`: an empty sharded label store for manifest images."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_dataset, add_manifest, open_dataset
from spino.data.manifest import read_manifest, select
from spino.groundtruth import create_store_for
from spino.store import STORE_NAMES

HELP = "create an empty sharded label store for manifest images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_manifest(p)
    p.add_argument("--store-splits", nargs="+", default=None, help="splits whose images the store holds")
    p.add_argument("--kind", required=True, choices=STORE_NAMES)
    p.add_argument("--images-per-shard", type=int, required=True)
    p.add_argument("--confidence", action="store_true", help="add a per-pixel confidence array")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    entries = select(read_manifest(args.manifest), args.store_splits, with_gt=args.kind == "ground_truth")
    class_set = open_dataset(args).class_set
    store = create_store_for(args.out, entries, class_set, args.images_per_shard, args.kind, args.confidence)
    print(f"{args.out}: {store.num_images} images in {store.num_shards} shards of {store.images_per_shard}")
