"""`spino suggest`: the k images of a split to annotate."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_dataset, add_unlabelled_images, dataset_records
from spino.config import schema_default
from spino.suggest import plot_suggestion, suggest_annotation, write_annotation

HELP = "the k images of a split to annotate: the best coverage of the image descriptors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_unlabelled_images(p)
    p.add_argument("--features", required=True, type=Path, help="written by `spino features`")
    p.add_argument("--split", default="train")
    p.add_argument("--k", type=int, required=True)
    p.add_argument(
        "--method",
        default=schema_default("suggest.method"),
        help="kmeans (typical images of k clusters) or kcenter (farthest-first)",
    )
    p.add_argument("--seed", type=int, default=schema_default("suggest.seed"))
    p.add_argument("--out", required=True, type=Path, help="YAML with the annotation section a config takes")
    p.add_argument("--figure", type=Path, help="PNG: the suggested images and a 2-D projection of all")


def run(args: argparse.Namespace) -> None:
    suggestion = suggest_annotation(args.features, args.split, args.k, args.method, args.seed)
    write_annotation(args.out, args.split, suggestion.chosen_ids, suggestion.note)
    if args.figure:
        paths = {r.image_id: r.image for r in dataset_records(args)[0]}
        plot_suggestion(suggestion.candidates, suggestion.chosen, [paths[i] for i in suggestion.pool_ids], args.figure)
    print(f"{args.out}: {suggestion.note}")
