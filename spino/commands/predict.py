"""`spino predict`: the panoptic model's predictions for one store shard."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_device, add_shard
from spino.devices import resolve_device
from spino.panoptic.predict import write_prediction_shard
from spino.panoptic.saved_model import load_model
from spino.store import LabelStore, mark_shard_done

HELP = "panoptic predictions for one shard of a store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    add_shard(p)
    add_device(p)


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    model, class_set, postprocess = load_model(args.checkpoint, device)
    store = LabelStore(args.store)
    n = write_prediction_shard(store, model, class_set, postprocess, args.shard)
    mark_shard_done(args.done, store, args.shard, {"images": n, "device": device})
