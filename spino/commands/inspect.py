"""`spino inspect`: a picture of one image of a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.data.io import write_png
from spino.store import LabelStore
from spino.viz import store_panel

HELP = "picture of one image of a store: image | labels | overlay"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=0)
    which.add_argument("--image-id")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    store = LabelStore(args.store)
    index = store.index_of(args.image_id) if args.image_id else args.index
    write_png(args.out, store_panel(store, index))
    print(f"{args.out}: {store.image_ids[index]}")
