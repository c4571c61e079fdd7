"""`spino pseudo-label`: pseudo-labels for the images of one store shard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.commands._options import add_device, add_manifest, add_settings, add_shard
from spino.data.manifest import read_manifest
from spino.devices import resolve_device
from spino.labelgen.labeller import open_labeller
from spino.labelgen.shards import write_pseudo_label_shard
from spino.store import LabelStore, mark_shard_done

HELP = "pseudo-label the images of one shard of a store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_manifest(p)
    add_shard(p, "report JSON written when the shard is complete")
    p.add_argument("--semantic-head", type=Path)
    p.add_argument("--boundary-head", type=Path)
    add_settings(p, "--settings", "pseudo_labels", required=False)
    p.add_argument(
        "--embedding-head", type=Path, help="fusion: embedding: instances by clustering this head's embeddings"
    )
    p.add_argument(
        "--spoco", type=Path, help="also write /raw, /embeddings, /segmentation of the shard to this HDF5 file"
    )
    p.add_argument("--primaps", type=Path, help="label by PriMaPs prototypes (spino fit-primaps) instead of the heads")
    add_device(p)


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    labeller = open_labeller(
        args.primaps, args.semantic_head, args.boundary_head, args.settings, args.embedding_head, device
    )
    store = LabelStore(args.store)
    paths = {e.image_id: e.image for e in read_manifest(args.manifest)}
    report = write_pseudo_label_shard(store, labeller, paths, args.shard, args.spoco)
    print(json.dumps(mark_shard_done(args.done, store, args.shard, {**report, "device": device})))
