"""`spino make-demo`: the synthetic demo dataset, in the folder layout; with ``--frames N``, demo
video sequences with track ids instead (the video folder layout that ``spino evaluate --video``
reads and ``spino segment --sequence`` segments)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from spino.commands._options import positive_int
from spino.data.synthetic import DemoSpec, write_demo, write_demo_sequences

HELP = "write the synthetic demo dataset (folder layout), or demo video sequences with --frames"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path)
    defaults = DemoSpec()  # config `demo`: its defaults come from the schema
    for f in fields(DemoSpec):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=getattr(defaults, f.name))
    p.add_argument(
        "--frames", type=positive_int, help="write video sequences of this many frames (moving cars and people)"
    )
    p.add_argument("--sequences", type=positive_int, default=4, help="how many sequences with --frames")


def run(args: argparse.Namespace) -> None:
    spec = DemoSpec(**{f.name: getattr(args, f.name) for f in fields(DemoSpec)})
    if args.frames:
        write_demo_sequences(args.out, spec, args.frames, args.sequences)
    else:
        write_demo(args.out, spec, workers=getattr(args, "threads", None) or 1)  # --threads: processes rendering
