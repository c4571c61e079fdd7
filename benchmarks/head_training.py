"""Head training cost per step: the frozen backbone's forward vs everything the head adds.

    python benchmarks/head_training.py --config config/cityscapes.yaml --weights none
    python benchmarks/head_training.py --config config/examples/cityscapes-mini.yaml
    python benchmarks/head_training.py --config config/examples/cityscapes-mini.yaml --output-stride 1

One step is what spino.labelgen.train runs: backbone forward on a crop at the head's input size,
the head's forward at its output stride, the loss (top-k cross-entropy on logits resized to the
crop for the semantic head, BCE for the boundary head), backward and the Adam step. Images and
labels are random (the cost does not depend on them). Prints seconds per step for the backbone and
for the head's part, and their ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from spino.backbone import Backbone, BackboneSpec
from spino.classes import CITYSCAPES_19
from spino.labelgen.head_kinds import HEAD_KINDS, head_settings
from spino.labelgen.mlp_head import MLPHead, head_grid
from spino.losses import boundary_loss, top_k_cross_entropy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--kind", choices=["semantic", "boundary"], default="semantic")
    p.add_argument("--weights", help="override backbone.weights (e.g. none for DINOv2 offline)")
    p.add_argument("--hidden", type=int, nargs="+", help="override the head's hidden widths")
    p.add_argument("--input-size", type=int, nargs=2, help="override the head's input size")
    p.add_argument("--output-stride", type=int, help="override the head's output stride")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    p.add_argument("--classes", type=int, default=19)
    args = p.parse_args()
    config = yaml.safe_load(args.config.read_text())
    head_cfg = dict(config[f"{args.kind}_head"])
    for key, value in (("hidden", args.hidden), ("input_size", args.input_size), ("output_stride", args.output_stride)):
        if value is not None:
            head_cfg[key] = value
    cfg = head_settings(args.kind, head_cfg)
    spec = BackboneSpec.from_dict({**config["backbone"], **({"weights": args.weights} if args.weights else {})})
    backbone = Backbone(spec)
    feed = backbone.round_size(*cfg.input_size)
    out = HEAD_KINDS[args.kind].load()(cfg, CITYSCAPES_19).output_size(backbone, feed)
    grid = head_grid(out, cfg.output_stride)
    n_out = args.classes if args.kind == "semantic" else 1
    head = MLPHead(backbone.channels, list(cfg.hidden), n_out)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *feed, generator=generator) * 255
    target = torch.randint(0, n_out if args.kind == "semantic" else 2, (1, *out), generator=generator)
    times = {"backbone": 0.0, "head": 0.0}
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        feats = backbone(image)
        t1 = time.perf_counter()
        logits = head(feats, out, grid)
        loss = (
            top_k_cross_entropy(logits, target, cfg.top_k)
            if args.kind == "semantic"
            else boundary_loss(logits[:, 0], target)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if step:  # the first step warms up allocators and kernels
            times["backbone"] += t1 - t0
            times["head"] += t2 - t1
    b, h = times["backbone"] / args.steps, times["head"] / args.steps
    print(
        f"config {args.config}  {args.kind} head {list(cfg.hidden)}  backbone {spec.name} ({backbone.channels} ch, stride {backbone.stride})"
    )
    print(
        f"input {feed[1]}x{feed[0]}  output {out[1]}x{out[0]}  MLP grid {grid[1]}x{grid[0]} (output stride {cfg.output_stride})  "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"per step: backbone {b:.3f} s  head (forward, loss, backward, Adam) {h:.3f} s  total {b + h:.3f} s  head/backbone {h / b:.2f}"
    )


if __name__ == "__main__":
    main()
