"""`spino make-demo`: the synthetic demo dataset, in the folder layout."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from spino.data.synthetic import DemoSpec, write_demo

HELP = "write the synthetic demo dataset (folder layout)"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path)
    defaults = DemoSpec()  # config `demo`: its defaults come from the schema
    for f in fields(DemoSpec):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=getattr(defaults, f.name))


def run(args: argparse.Namespace) -> None:
    write_demo(args.out, DemoSpec(**{f.name: getattr(args, f.name) for f in fields(DemoSpec)}))
