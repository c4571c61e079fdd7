"""`spino report`: the run's HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import settings_json
from spino.report import write_report

HELP = "the run's report: scores, curves, timings, overlays, config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, type=Path, help="results/<run>")
    p.add_argument("--config", required=True, type=settings_json, help="the run's config, as JSON or a JSON file")
    p.add_argument("--out", required=True, type=Path, help="report folder (report.html + PNGs)")


def run(args: argparse.Namespace) -> None:
    print(f"{write_report(args.results, args.config, args.out)}: report written")
