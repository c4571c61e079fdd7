"""What the label benchmarks share: a run's config, heads and ground truth, and the images they score.

The images are those of one split that have ground truth and were not annotated (the heads never
trained on them), optionally only the first N.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import yaml

from spino.data.manifest import Entry, read_manifest
from spino.store import LabelStore


@dataclass
class ScoredRun:
    config: dict
    results: Path  # results/<run>/, with heads/, manifest.csv and ground_truth.zarr
    entries: list[Entry]
    gt: LabelStore


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--split", default="val")
    p.add_argument("--images", type=int, default=0, help="score only the first N images (0: all)")


def open_scored_run(args: argparse.Namespace) -> ScoredRun:
    config = yaml.safe_load(args.config.read_text())
    results = Path("results") / config["run"]
    entries = [
        e for e in read_manifest(results / "manifest.csv") if e.split == args.split and e.has_gt and not e.annotated
    ]
    return ScoredRun(config, results, entries[: args.images or None], LabelStore(results / "ground_truth.zarr"))
