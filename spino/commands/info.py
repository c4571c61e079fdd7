"""`spino info`: what a label store holds and whether it is complete."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.store import LabelStore, class_counts, store_summary

HELP = "shape, shards, completeness and class set of a label store"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path)
    p.add_argument("--counts", action="store_true", help="also count pixels and segments per class")
    p.add_argument("--verify", action="store_true", help="check every shard file's sha256, not only its size")


def run(args: argparse.Namespace) -> None:
    store = LabelStore(args.store)
    info = store_summary(store, args.verify)
    if args.counts:
        info["counts"] = class_counts(store)
    print(json.dumps(info, indent=2))
