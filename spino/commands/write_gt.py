"""`spino write-gt`: one shard of the ground-truth store."""

from __future__ import annotations

import argparse

from spino.commands._options import add_dataset, add_manifest, add_shard, open_dataset
from spino.data.manifest import read_manifest
from spino.groundtruth import write_ground_truth_shard
from spino.store import LabelStore, mark_shard_done

HELP = "write one shard of a ground-truth store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset(p)
    add_manifest(p)
    add_shard(p)


def run(args: argparse.Namespace) -> None:
    store = LabelStore(args.store)
    entries = {e.image_id: e for e in read_manifest(args.manifest)}
    write_ground_truth_shard(store, open_dataset(args), entries, args.shard)
    mark_shard_done(args.done, store, args.shard, {})
