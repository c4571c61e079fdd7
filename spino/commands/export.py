"""`spino export`: a store as Cityscapes gtFine PNGs or COCO panoptic."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.export import LABEL_FORMATS, export_store
from spino.store import LabelStore

HELP = "export a store as Cityscapes gtFine PNGs or COCO panoptic"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path)
    p.add_argument("--format", choices=list(LABEL_FORMATS), default="gtfine")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    n = export_store(LabelStore(args.store), args.out, args.format)
    print(f"{args.out}: {n} images exported as {args.format}")
