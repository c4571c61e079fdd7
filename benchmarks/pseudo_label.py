"""Pseudo-labelling cost per image for a config: time per stage and peak memory.

    python benchmarks/pseudo_label.py --config config/cityscapes.yaml --weights none
    python benchmarks/pseudo_label.py --config config/config.yaml \
        --semantic-head results/demo/heads/semantic.pt --boundary-head results/demo/heads/boundary.pt

Without trained heads it builds untrained heads of the config's sizes (the cost does not depend
on the weights, except fusion's, which depends on how fragmented the labels are). Images are the
dataset's first ones when the config's dataset exists, else random images of --height x --width.
Prints seconds per image for backbone / heads / fusion / store write and the process's peak
resident memory (and peak CUDA memory on a GPU); the backbone's FLOPs per image (every tile pass
at the heads' input size, counted by torch's FlopCounterMode) and what the backbone time makes of
them: TFLOP/s, and on a GPU whose bf16 peak is known (or --peak-tflops), the model FLOP
utilisation (MFU).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from spino.backbone import Backbone, BackboneSpec
from spino.classes import CITYSCAPES_19, DEMO
from spino.data import open_dataset
from spino.data.io import write_png
from spino.labelgen.head_kinds import head_settings
from spino.labelgen.mlp_head import MLPHead
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig
from spino.labelgen.shards import write_pseudo_label_shard
from spino.labelgen.train import save_head
from spino.store import create_store

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) of the GPUs a cluster has, from the
# vendors' data sheets: what MFU is measured against.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0}
PEAK_BF16_TFLOPS |= {"A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}


def peak_tflops(device: str) -> float | None:
    """The bf16 peak of the GPU ``device`` names, where its name is known; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def backbone_flops(generator: LabelGenerator, height: int, width: int) -> tuple[float, int]:
    """FLOPs of the backbone passes one image of ``height`` x ``width`` costs the label generator, and
    how many passes: one per tile of each semantic scale, one per tile of each boundary scale that
    the semantic pass does not share, each at its head's input size."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    # torch counts the GPU's attention kernels; the CPU's is not in its table (the ViT's attention,
    # two thirds of its FLOPs at the paper's 10,000 tokens, would go uncounted)
    def cpu_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}

    def one_pass(backbone, feed) -> float:
        with FlopCounterMode(display=False, custom_mapping=attention) as counter:
            backbone(torch.zeros(1, 3, *feed, device=generator.device))
        return float(counter.get_total_flops())

    semantic = one_pass(generator.semantic_backbone, generator.semantic_feed)
    boundary = semantic if generator.shared_pass else one_pass(generator.boundary_backbone, generator.boundary_feed)
    passes = generator.tile_passes(height, width)
    return sum(semantic if "semantic" in p.heads else boundary for p in passes), len(passes)


def untrained_heads(config: dict, weights: str, out: Path, class_set) -> tuple[Path, Path]:
    spec = BackboneSpec.from_dict({**config["backbone"], "weights": weights})
    backbone = Backbone(spec)
    paths = []
    for kind, n_out in (("semantic", class_set.num_classes), ("boundary", 1)):
        cfg = head_settings(kind, config[f"{kind}_head"])
        head = MLPHead(backbone.channels, list(cfg.hidden), n_out)
        save_head(out / f"{kind}.pt", head, cfg, spec, class_set, backbone.round_size(*cfg.input_size))
        paths.append(out / f"{kind}.pt")
    return paths[0], paths[1]


def images_for(config: dict, n: int, height: int, width: int) -> tuple[list[np.ndarray], object]:
    d = config["dataset"]
    try:
        ds = open_dataset(d["kind"], d["root"], d.get("splits"), d.get("classes"))
        records = ds.scan()[:n]
        return [ds.read_image(r) for r in records], ds.class_set
    except (FileNotFoundError, ValueError) as err:
        print(f"# dataset not available ({err}); using random images", file=sys.stderr)
        rng = np.random.default_rng(0)
        class_set = CITYSCAPES_19 if d["kind"] == "cityscapes" else DEMO
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)], class_set


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--semantic-head", type=Path)
    p.add_argument("--boundary-head", type=Path)
    p.add_argument("--weights", default=None, help="override backbone.weights for untrained heads (e.g. none)")
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--semantic-scales", type=int, nargs="+", help="override pseudo_labels.semantic_scales (e.g. to time one scale)"
    )
    p.add_argument("--boundary-scales", type=int, nargs="+", help="override pseudo_labels.boundary_scales")
    p.add_argument("--head-dtype", choices=["auto", "float32", "bfloat16"], help="override pseudo_labels.head_dtype")
    p.add_argument(
        "--peak-tflops", type=float, help="the device's bf16 peak, for MFU (default: known GPUs' data sheets)"
    )
    p.add_argument("--tile-overlap", type=float, help="override pseudo_labels.tile_overlap")
    p.add_argument("--tile-batch", type=int, help="override pseudo_labels.tile_batch")
    args = p.parse_args()
    config = yaml.safe_load(args.config.read_text())
    for key in ("semantic_scales", "boundary_scales", "head_dtype", "tile_overlap", "tile_batch"):
        if getattr(args, key) is not None:
            config["pseudo_labels"][key] = getattr(args, key)
    images, class_set = images_for(config, args.images, args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.semantic_head and args.boundary_head:
            sem, bnd = args.semantic_head, args.boundary_head
        else:
            sem, bnd = untrained_heads(config, args.weights or config["backbone"]["weights"], tmp, class_set)
        generator = LabelGenerator(sem, bnd, PseudoLabelConfig.from_dict(config["pseudo_labels"]), args.device)
        if args.device.startswith("cuda"):
            generator(images[0][:64, :128])  # warm-up (CUDA context, kernels), not counted
            generator.timings.clear()
        h, w = images[0].shape[:2]
        store = create_store(
            tmp / "bench.zarr", [f"i{k}" for k in range(len(images))], h, w, class_set, len(images), True
        )
        paths = {}
        for k, image in enumerate(images):
            write_png(tmp / f"i{k}.png", image)
            paths[f"i{k}"] = str(tmp / f"i{k}.png")
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        write_pseudo_label_shard(store, generator, paths, 0)
        total = time.perf_counter() - start
    t = generator.timings
    n = len(images)
    print(
        f"config {args.config}  backbone {config['backbone']['name']}  image {w}x{h}  device {args.device}  "
        f"threads {torch.get_num_threads()}  images {n}"
    )
    pl = generator.cfg  # the settings it labelled with, the schema's defaults filled in
    print(
        f"scales: semantic {list(pl.semantic_scales)}  boundary {list(pl.boundary_scales)}  tile overlap {pl.tile_overlap}  "
        f"tile batch {pl.tile_batch}  heads {pl.head_dtype}  semantic output stride {generator.semantic_stride}"
    )
    print(f"{'stage':<12}{'s/image':>10}{'share':>8}")
    for stage in ("read", "backbone", "heads", "fusion", "store_write"):
        print(f"{stage:<12}{t.get(stage, 0) / n:>10.3f}{t.get(stage, 0) / total:>8.1%}")
    print(f"{'total':<12}{total / n:>10.3f}")
    print(f"fusion + store write: {(t.get('fusion', 0) + t.get('store_write', 0)) / total:.1%} of the total")
    print(f"total / backbone: {total / t.get('backbone', float('nan')):.2f}")
    flops, passes = backbone_flops(generator, h, w)
    per_image = t.get("backbone", 0) / n
    print(f"backbone passes per image: {passes} ({per_image / passes:.3f} s each)")
    achieved = flops / per_image / 1e12 if per_image else float("nan")
    print(f"backbone FLOPs per image: {flops / 1e9:.1f} GFLOP; at its {per_image:.3f} s: {achieved:.4f} TFLOP/s")
    peak = args.peak_tflops or peak_tflops(args.device)
    if peak:
        print(
            f"MFU of the backbone: {achieved / peak:.1%} of {peak:.0f} TFLOP/s (bf16 peak); of the whole labelling: {flops / (total / n) / 1e12 / peak:.1%}"
        )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.device.startswith("cuda"):
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
