"""`spino index`: the manifest of a dataset's images, with the annotated ones chosen."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_dataset, add_unlabelled_images, dataset_records, open_dataset
from spino.config import schema_default
from spino.data.corrections import apply_corrections
from spino.data.io import describe_orientations
from spino.data.manifest import (
    build_manifest,
    check_splits,
    choose_annotated,
    describe,
    describe_sizes,
    working_size,
    write_manifest,
)

HELP = "list a dataset's images and choose the annotated ones (manifest CSV)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    p.add_argument("--annotate-split", default="train")
    add_unlabelled_images(p)
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--indices", type=int, nargs="+", help="indices into the sorted labelled images")
    choice.add_argument("--ids", nargs="+", help="image ids")
    choice.add_argument("--k", type=int, help="draw k images with --seed")
    p.add_argument("--seed", type=int, default=schema_default("annotation.seed"))
    p.add_argument(
        "--corrections",
        nargs="*",
        default=[],
        metavar="EXPORT",
        help="corrected COCO exports of review rounds, in order (config annotation.corrections): their images become annotated",
    )
    p.add_argument("--need-images", nargs="*", default=[], metavar="SPLIT", help="splits that must have images")
    p.add_argument(
        "--need-labels", nargs="*", default=[], metavar="SPLIT", help="splits that must have labelled images"
    )
    p.add_argument(
        "--image-size", type=int, nargs=2, metavar=("H", "W"), help="working size (default: the most common)"
    )
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    dataset = open_dataset(args)
    records, added = dataset_records(args, dataset)
    # the first annotations are chosen as before any round (a corrected raw frame must not change the draw)
    annotated = choose_annotated(records, args.annotate_split, args.indices, args.ids, args.k, args.seed)
    taken = None
    if args.corrections:
        records, taken = apply_corrections(records, args.corrections, dataset.class_set)
    dataset.check_sizes(records)  # headers first: a wrong size is named without decoding anything
    dataset.verify(records)
    entries = build_manifest(records, annotated)
    check_splits(entries, args.need_images, args.need_labels)  # choose_annotated took labelled images only
    write_manifest(args.out, entries)
    print(f"{args.out}: {describe(entries)}")
    for line in (added, taken):
        if line:
            print(line)
    print(describe_sizes(entries, working_size(entries, args.image_size)))
    turned = describe_orientations([e.image for e in entries])
    if turned:
        print(turned)
