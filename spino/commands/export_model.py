"""`spino export-model`: a trained model as one self-contained file for deployment.

``.safetensors``: every weight (the frozen backbone's too) with the model's settings, classes and
post-processing in its header; loads without network or the backbone's weight package.
``.onnx``: the network exported with torch.onnx (dynamo), run by ONNX Runtime; ``spino segment``
and ``spino.Segmenter`` take either.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.deploy.model_files import writable_formats, write_model
from spino.errors import InputError

HELP = "export a trained model as a self-contained .safetensors bundle or as ONNX"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the run's model.pt (or a .safetensors bundle)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--format", choices=writable_formats(), help="default: from the suffix of --out")


def run(args: argparse.Namespace) -> None:
    fmt = args.format or args.out.suffix.lstrip(".").lower()
    writable = writable_formats()
    if fmt not in writable:
        raise InputError(f"{args.out}: give --format ({' or '.join(writable)}) or an --out whose suffix names one")
    write_model(args.model, args.out, fmt)
    print(f"{args.out}: {fmt} model written")
