"""`spino create-store`: an empty sharded label store for manifest images."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_dataset, add_manifest, open_dataset
from spino.data.manifest import read_manifest, select, working_size
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
    p.add_argument(
        "--top2",
        action="store_true",
        help="with --confidence: also each pixel's second most likely class and its probability (pseudo_labels.top2)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="the size every image is held at (config dataset.image_size; default: the most common)",
    )
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    every = read_manifest(args.manifest)
    entries = select(every, args.store_splits, with_gt=args.kind == "ground_truth")
    class_set = open_dataset(args).class_set
    size = working_size(every, args.image_size)  # of the whole manifest: every store of a run has one size
    store = create_store_for(
        args.out, entries, size, class_set, args.images_per_shard, args.kind, args.confidence, args.top2
    )
    print(
        f"{args.out}: {store.num_images} images at {size[1]}x{size[0]} in {store.num_shards} shards of {store.images_per_shard}"
    )
