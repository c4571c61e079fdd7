"""`spino fetch-weights`: a timm backbone's weights, for compute nodes without internet."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.backbone import fetch_weights

HELP = "download a timm backbone's weights for offline compute nodes"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="timm model name, e.g. vit_base_patch14_dinov2.lvd142m")
    p.add_argument("--out", type=Path, help="default: resources/weights/<name>.safetensors")


def run(args: argparse.Namespace) -> None:
    out = args.out or Path("resources/weights") / f"{args.name}.safetensors"
    print(f"{fetch_weights(args.name, out)}: weights of {args.name}; set backbone.weights to this path")
