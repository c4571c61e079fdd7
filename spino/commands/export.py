"""`spino export`: a store as Cityscapes gtFine PNGs or COCO panoptic."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.export import EXPORT_FORMATS
from spino.store import LabelStore

HELP = "export a store as Cityscapes gtFine PNGs or COCO panoptic"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path)
    p.add_argument("--format", choices=list(EXPORT_FORMATS), default="gtfine")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    n = EXPORT_FORMATS[args.format](LabelStore(args.store), args.out)
    print(f"{args.out}: {n} images exported as {args.format}")
