"""Panoptic model cost for a config: training step time, inference time per image, peak memory.

    python benchmarks/panoptic.py --config config/config.yaml
    python benchmarks/panoptic.py --config config/cityscapes.yaml --weights none --steps 3

Uses random images and targets at the config's input size and batch size (the cost does not
depend on the data), the config's backbone (weights overridable, e.g. `none` offline), and the
same loss and post-processing code as training and prediction.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from spino.classes import CITYSCAPES_19, DEMO
from spino.encoding import LABEL_DIVISOR
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.predict import predict_panoptic
from spino.panoptic.targets import panoptic_targets
from spino.panoptic.train import TrainConfig, losses


def synthetic_label(rng: np.random.Generator, size: tuple[int, int], class_set) -> np.ndarray:
    """Stuff bands with a dozen thing rectangles: enough structure for realistic targets."""
    h, w = size
    stuff = np.array(class_set.stuff_ids, dtype=np.uint32)
    pan = stuff[np.arange(h) * len(stuff) // h][:, None].repeat(w, 1) * LABEL_DIVISOR
    for k in range(12):
        cls = int(rng.choice(class_set.thing_ids))
        y, x = rng.integers(0, h - h // 6), rng.integers(0, w - w // 8)
        pan[y : y + h // 6, x : x + w // 8] = cls * LABEL_DIVISOR + k + 1
    return pan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--weights", default=None, help="override backbone.weights (e.g. none)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    config = yaml.safe_load(args.config.read_text())
    backbone = {**config["backbone"], **({"weights": args.weights} if args.weights else {})}
    model_cfg = ModelConfig.from_dict(config["panoptic"]["model"], backbone)
    train_cfg = TrainConfig.from_dict(config["panoptic"]["train"])
    class_set = CITYSCAPES_19 if config["dataset"]["kind"] == "cityscapes" else DEMO
    device = torch.device(args.device)
    model = PanopticModel(model_cfg, class_set.num_classes).to(device)
    optimizer = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=train_cfg.lr)
    rng = np.random.default_rng(0)
    size = model_cfg.input_size
    targets = [panoptic_targets(synthetic_label(rng, size, class_set), class_set, train_cfg.targets) for _ in range(train_cfg.batch_size)]
    batch = {k: torch.stack([t[k] for t in targets]).to(device) for k in targets[0]}
    batch["image"] = torch.rand((train_cfg.batch_size, 3, *size), device=device) * 255
    amp = train_cfg.amp and device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(batch["image"])
        loss = losses(out, batch, train_cfg)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(fn, n: int) -> float:
        fn()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    train_s = timed(step, args.steps)
    model.eval()
    image = batch["image"][0]
    infer_s = timed(lambda: predict_panoptic(model, image, class_set, train_cfg.postprocess), args.images)
    print(f"config {args.config}  backbone {backbone['name']}  input {size[1]}x{size[0]}  batch {train_cfg.batch_size}  "
          f"device {device}  threads {torch.get_num_threads()}  amp {amp}")
    print(f"trainable parameters: {sum(q.numel() for q in model.parameters() if q.requires_grad) / 1e6:.2f} M")
    print(f"training step: {train_s:.3f} s  ({train_s / train_cfg.batch_size:.3f} s per image)")
    print(f"inference incl. post-processing: {infer_s:.3f} s per image")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
