"""`spino gather`: check every shard of a store and mark it complete."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.data.io import write_json
from spino.store import LabelStore

HELP = "check every shard of a store and mark it complete"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, help="summary JSON")


def run(args: argparse.Namespace) -> None:
    summary = {**LabelStore(args.store).finalize(), "complete": True}
    if args.out:
        write_json(args.out, summary)
    print(json.dumps(summary))
