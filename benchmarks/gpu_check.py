"""The GPU check's figures: what a first CUDA run of spino needs to show (benchmarks/gpu_check.sh runs it).

    python benchmarks/gpu_check.py            # the paper's sizes on cuda:0
    python benchmarks/gpu_check.py --cpu      # the same code paths at tiny sizes on the CPU (a test runs it)

Sections, each printing its figures: versions; ``train_panoptic`` (the real function) for each
instance method with the paper's model sizes (adapter 768, decoders 256, heads 128, 448x896 input,
ViT-B/14 with random weights, batch 8, 20 steps): step time, the share spent waiting for the
loader, peak memory, the dtype a ViT block computes in, the devices of the saved checkpoints'
tensors, whether every loss is finite; NCCL at world size 1 with SyncBatchNorm and DDP, two bf16
steps; ``predict_panoptic`` at 1024x2048 with flip off and on; the label generator on one
2048x1024 image at the paper's widths, fp32 against bf16 heads and backbone, and bf16 with 4 tiles
per backbone call (seconds, memory, MFU and how many pixels agree); 20 steps of every head kind; ``spino segment``'s images/s at 1024x2048. Random weights: the costs do not depend on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import timm
import torch
import torch.distributed as dist
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from panoptic import synthetic_label, synthetic_samples  # noqa: E402  (benchmarks/panoptic.py)
from pseudo_label import backbone_flops, peak_tflops, untrained_heads  # noqa: E402  (benchmarks/pseudo_label.py)

import spino.panoptic.train as training  # noqa: E402
from spino.backbone import BackboneSpec  # noqa: E402
from spino.classes import CITYSCAPES_19  # noqa: E402
from spino.labelgen.head_kinds import HEAD_KINDS, head_settings  # noqa: E402
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig  # noqa: E402
from spino.labelgen.train import train_head  # noqa: E402
from spino.panoptic.distributed import Distributed, process_group_options, sync_batchnorm  # noqa: E402
from spino.panoptic.instances import INSTANCE_METHODS  # noqa: E402
from spino.panoptic.model import ModelConfig, PanopticModel  # noqa: E402
from spino.panoptic.predict import predict_panoptic  # noqa: E402
from spino.panoptic.saved_model import load_model  # noqa: E402
from spino.panoptic.train import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAPER = {
    "model": {"channels": 768, "decoder_channels": 256, "head_channels": 128, "input_size": [448, 896]},
    "backbone": {"name": "vit_base_patch14_dinov2.lvd142m", "weights": "none", "out_indices": [-1]},
    "batch_size": 8,
    "steps": 20,
    "image": (1024, 2048),
    "labelgen_config": "config/cityscapes.yaml",
    "heads": {},  # the config's own head settings
    "head_steps": 20,
}
# --cpu: the widths of the tests' tiny run (.test/config/config.yaml), at an input a ViT/14 tiles.
TEST_RUN = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
WIDTHS = ("channels", "decoder_channels", "head_channels")
TINY = {
    "model": {**{k: TEST_RUN["panoptic"]["model"][k] for k in WIDTHS}, "input_size": [28, 56]},
    "backbone": {"name": "vit_small_patch14_dinov2.lvd142m", "weights": "none", "out_indices": [-1]},
    "batch_size": 2,
    "steps": 3,
    "image": (64, 128),
    "labelgen_config": "config/config.yaml",
    "heads": {k: TEST_RUN["semantic_head"][k] for k in ("hidden", "input_size")},
    "head_steps": 4,
}


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> str:
    rss = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    if device.type == "cuda":
        return f"peak CUDA {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB, {rss}"
    return rss


def tensor_devices(value) -> set[str]:
    """The devices of every tensor in a loaded checkpoint (nested dicts and lists: optimizer states too)."""
    if isinstance(value, torch.Tensor):
        return {str(value.device)}
    if isinstance(value, dict):
        return set().union(*(tensor_devices(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(tensor_devices(v) for v in value))
    return set()


@contextmanager
def vit_mlp_dtypes(seen: list[torch.dtype]):
    """Record the output dtype of every timm MLP that runs inside the context: the dtype a ViT block
    computes in (the block's own output is fp32 under autocast too, promoted by the fp32 residual)."""
    from timm.layers import GluMlp, Mlp, SwiGLU

    def hook(module, args, output):
        if isinstance(module, (Mlp, GluMlp, SwiGLU)):
            seen.append(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def timed_training(times: dict[str, float]):
    """Time ``train_panoptic``'s steps and its waits for batches (``train_step`` and ``batch_loader``
    of spino.panoptic.train wrapped for the duration; a step ends in ``.tolist()``, which waits for the GPU)."""
    step, loader = training.train_step, training.batch_loader

    def timed_step(*args, **kwargs):
        start = time.perf_counter()
        row = step(*args, **kwargs)
        times["steps"].append(time.perf_counter() - start)
        return row

    def timed_loader(*args, **kwargs):
        batches = iter(loader(*args, **kwargs))
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            times["waits"].append(time.perf_counter() - start)
            yield batch

    training.train_step, training.batch_loader = timed_step, timed_loader
    try:
        yield
    finally:
        training.train_step, training.batch_loader = step, loader


def train_config(sizes: dict, steps: int) -> TrainConfig:
    paper = yaml.safe_load((REPO / "config/cityscapes.yaml").read_text())["panoptic"]["train"]
    return TrainConfig.from_dict(
        {
            **paper,
            "steps": steps,
            "batch_size": sizes["batch_size"],
            "checkpoint_every": max(1, steps // 2),
            "val_every": steps,
            "val_images": 2,
        }
    )


def check_training(sizes: dict, device: torch.device, tmp: Path, workers: list[int]) -> Path:
    """train_panoptic for each instance method and number of loader workers; returns the centre/offset
    model's checkpoint."""
    rng = np.random.default_rng(0)
    ground_truth, pseudo = synthetic_samples(tmp / "images", 10, sizes["image"], CITYSCAPES_19, rng)
    cfg = train_config(sizes, sizes["steps"])
    print(f"global batch {cfg.batch_size}, {cfg.steps} steps, amp {cfg.amp}")
    first = None
    for instance, processes in ((i, n) for i in sorted(INSTANCE_METHODS) for n in workers):
        model_cfg = ModelConfig.from_dict({**sizes["model"], "instance": instance}, sizes["backbone"])
        out = tmp / f"{instance}-{processes}" / "model.pt"
        times: dict[str, list[float]] = {"steps": [], "waits": []}
        seen: list[torch.dtype] = []
        reset_peak(device)
        start = time.perf_counter()
        with timed_training(times), vit_mlp_dtypes(seen):
            training.train_panoptic(
                cfg,
                model_cfg,
                training.TrainingData(CITYSCAPES_19, ground_truth, pseudo, ground_truth),
                out.parent / "work",
                out,
                str(device),
                workers=processes,
            )
        total = time.perf_counter() - start
        steps = times["steps"][1:] or times["steps"]  # the first step compiles kernels and warms the allocator
        step_s = sum(steps) / len(steps)
        waited = sum(times["waits"][1:]) / max(1, sum(times["steps"][1:]) + sum(times["waits"][1:]))
        rows = np.loadtxt(out.parent / "losses.csv", delimiter=",", skiprows=1, ndmin=2)
        saved = {p.name: tensor_devices(torch.load(p, weights_only=True)) for p in (out, out.parent / "work/last.pt")}
        dtypes = sorted({str(d).removeprefix("torch.") for d in seen})
        print(
            f"{instance}, {processes} loader workers: {step_s:.3f} s/step ({1 / step_s:.2f} steps/s, first step {times['steps'][0]:.2f} s), "
            f"{100 * waited:.1f} % waiting for batches, {total:.1f} s in all incl. validation; {peak_memory(device)}"
        )
        print(
            f"{instance}: ViT MLPs compute in {dtypes}; saved tensors on {saved}; "
            f"losses finite: {bool(np.isfinite(rows[:, 2:]).all())} (last total {rows[-1, 2]:.4f})"
        )
        first = first or out
    return first


def check_ddp(sizes: dict, device: torch.device) -> None:
    """DDP over a world of one (NCCL on a GPU, gloo on the CPU), SyncBatchNorm on a GPU, two steps."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    options = process_group_options(device)
    dist.init_process_group(**options, rank=0, world_size=1)
    cfg = train_config(sizes, 2)
    model_cfg = ModelConfig.from_dict(sizes["model"], sizes["backbone"])
    model = PanopticModel(model_cfg, CITYSCAPES_19.num_classes).to(device)
    if device.type == "cuda":
        model = sync_batchnorm(model)
    synced = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    method = model.instance_method
    rng = np.random.default_rng(1)
    size = tuple(model_cfg.input_size)
    targets = [method.targets(synthetic_label(rng, size, CITYSCAPES_19), CITYSCAPES_19, cfg.targets) for _ in range(2)]
    batch = {k: torch.stack([t[k] for t in targets]).to(device) for k in targets[0]}
    batch["image"] = torch.rand((2, 3, *size), device=device) * 255
    model.train()
    env, precision = Distributed(str(device)), training.Precision.of(device, cfg.amp)  # bf16 on a GPU
    values = [training.train_step(net, optimizer, batch, step, cfg, env, method, precision)[2] for step in range(2)]
    dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
    dist.destroy_process_group()
    print(f"{options['backend']}, timeout {options['timeout']}, {synced} SyncBatchNorm layers, losses {values}")


def check_prediction(checkpoint: Path, sizes: dict, device: torch.device) -> None:
    model, class_set, post = load_model(checkpoint, device)
    image = torch.rand((3, *sizes["model"]["input_size"]), device=device) * 255
    for flip in (False, True):
        cfg = type(post)(**{**post.__dict__, "flip": flip})
        predict_panoptic(model, image, class_set, cfg, sizes["image"])  # warm-up
        reset_peak(device)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(3):
            predict_panoptic(model, image, class_set, cfg, sizes["image"])
        synchronize(device)
        print(
            f"flip {flip}: {(time.perf_counter() - start) / 3:.3f} s per image at "
            f"{sizes['image'][1]}x{sizes['image'][0]}; {peak_memory(device)}"
        )


def check_segment(checkpoint: Path, sizes: dict, device: torch.device, tmp: Path) -> None:
    """``spino segment``'s loop (read, network, post-processing, COCO writes) on synthetic images of the
    full size: images/s at batch 1 and 4."""
    from spino.deploy.segment_files import SegmentOptions, segment_files
    from spino.deploy.segmenter import Segmenter

    rng = np.random.default_rng(4)
    folder = tmp / "segment-images"
    synthetic_samples(folder, 12, sizes["image"], CITYSCAPES_19, rng)
    images = sorted(str(p) for p in folder.glob("*.png"))
    segmenter = Segmenter.from_checkpoint(checkpoint, str(device))
    for batch_size in (1, 4):
        reset_peak(device)
        start = time.perf_counter()
        segment_files(
            segmenter, images, tmp / f"segmented-{batch_size}", SegmentOptions(batch_size=batch_size, workers=2)
        )
        seconds = time.perf_counter() - start
        print(
            f"batch {batch_size}: {len(images) / seconds:.2f} images/s at {sizes['image'][1]}x{sizes['image'][0]}; "
            f"{peak_memory(device)}"
        )


def check_label_generator(sizes: dict, device: torch.device, tmp: Path) -> None:
    """fp32 (with and without TF32 matrix products) against bf16 heads and backbone on one image of
    the full size, the config's scales: seconds, memory, and how many pixels agree with plain fp32."""
    config = labelgen_config(sizes)
    image = np.random.default_rng(2).integers(0, 256, (*sizes["image"], 3), dtype=np.uint8)
    labels = {}
    variants = (
        ("float32", "highest", 1),
        ("float32", "high", 1),
        ("bfloat16", "highest", 1),
        ("bfloat16", "highest", 4),
    )
    for dtype, matmul, tile_batch in variants:
        name = f"{dtype}, matmul precision {matmul}, {tile_batch} tile{'s' * (tile_batch > 1)} per backbone call"
        variant = {**config, "backbone": {**config["backbone"], "dtype": dtype}}
        folder = tmp / f"heads-{dtype}-{matmul}-{tile_batch}"
        folder.mkdir()
        weights = "none" if device.type == "cuda" else config["backbone"]["weights"]
        torch.manual_seed(0)  # the same heads in every precision
        sem, bnd = untrained_heads(variant, weights, folder, CITYSCAPES_19)
        cfg = PseudoLabelConfig.from_dict({**config["pseudo_labels"], "head_dtype": dtype, "tile_batch": tile_batch})
        generator = LabelGenerator(sem, bnd, cfg, str(device))
        default = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(matmul)  # "high": TF32 on a GPU that has it
        try:
            generator(image[:64, :128])  # warm-up
            generator.timings.clear()
            reset_peak(device)
            start = time.perf_counter()
            labels[name] = generator(image)
            seconds = time.perf_counter() - start
        finally:
            torch.set_float32_matmul_precision(default)
        plain = next(iter(labels.values()))
        print(
            f"{name}: {seconds:.2f} s per {image.shape[1]}x{image.shape[0]} image; {peak_memory(device)}; "
            f"agrees with plain fp32 on {100 * np.mean(labels[name].semantic == plain.semantic):.2f} % of "
            f"semantic pixels, {100 * np.mean(labels[name].panoptic == plain.panoptic):.2f} % of panoptic"
        )
        flops, passes = backbone_flops(generator, *image.shape[:2])
        backbone = generator.timings["backbone"]
        peak = peak_tflops(str(device))
        mfu = (
            f"; MFU {flops / seconds / 1e12 / peak:.1%} whole, {flops / backbone / 1e12 / peak:.1%} backbone"
            if peak
            else ""
        )
        print(
            f"  backbone: {passes} passes, {flops / 1e12:.1f} TFLOP per image, {backbone:.2f} s "
            f"({flops / backbone / 1e12:.1f} TFLOP/s){mfu}"
        )


def labelgen_config(sizes: dict) -> dict:
    """The label generator's config with the sizes' head settings over its heads'."""
    config = yaml.safe_load((REPO / sizes["labelgen_config"]).read_text())
    for kind in HEAD_KINDS:
        key = f"{kind}_head"
        config[key] = {**config.get(key, {"input_size": config["semantic_head"]["input_size"]}), **sizes["heads"]}
    return config


def check_heads(sizes: dict, device: torch.device, tmp: Path) -> None:
    config = labelgen_config(sizes)
    rng = np.random.default_rng(3)
    h, w = sizes["image"]
    samples = [
        (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), synthetic_label(rng, (h, w), CITYSCAPES_19)) for _ in range(4)
    ]
    spec = BackboneSpec.from_dict(
        config["backbone"] if device.type == "cpu" else {**config["backbone"], "weights": "none"}
    )
    for kind in HEAD_KINDS:
        cfg = head_settings(kind, {**config[f"{kind}_head"], "epochs": sizes["head_steps"] // len(samples)})
        reset_peak(device)
        start = time.perf_counter()
        train_head(cfg, spec, samples, CITYSCAPES_19, tmp / f"{kind}.pt", tmp / f"{kind}.csv", str(device))
        rows = np.loadtxt(tmp / f"{kind}.csv", delimiter=",", skiprows=1, ndmin=2)
        seconds = time.perf_counter() - start
        print(
            f"{kind} head: {len(rows)} steps in {seconds:.2f} s ({seconds / len(rows):.3f} s/step), losses finite: "
            f"{bool(np.isfinite(rows[:, -1]).all())}; {peak_memory(device)}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU: the same code paths, quickly")
    p.add_argument("--workers", type=int, nargs="+", help="loader workers to train with (4 on a GPU, 0 on the CPU)")
    args = p.parse_args()
    sizes = TINY if args.cpu else PAPER
    device = torch.device("cpu" if args.cpu else "cuda:0")
    section("versions")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"timm {timm.__version__}, threads {torch.get_num_threads()}"
    )
    if device.type == "cuda":
        torch.cuda.set_device(device)
        print(
            f"{torch.cuda.get_device_name(device)}: bf16 native {torch.cuda.is_bf16_supported(including_emulation=False)}, "
            f"with emulation {torch.cuda.is_bf16_supported()}"
        )
    failed: list[str] = []

    def run(title: str, check, *args):
        """One section; a failure prints its traceback and the later sections still run, so that one
        GPU call shows every problem."""
        section(title)
        try:
            return check(*args)
        except Exception:
            traceback.print_exc(file=sys.stdout)
            failed.append(title)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trained = f"train_panoptic at {sizes['model']['input_size']} ({sizes['backbone']['name']}, random weights)"
        workers = args.workers or [0 if args.cpu else 4]
        checkpoint = run(trained, check_training, sizes, device, tmp, workers)
        run("DDP at world size 1", check_ddp, sizes, device)
        if checkpoint is not None:
            run(f"predict_panoptic at {sizes['image']}", check_prediction, checkpoint, sizes, device)
            run(f"spino segment at {sizes['image']}", check_segment, checkpoint, sizes, device, tmp)
        run(f"label generator ({sizes['labelgen_config']}), fp32 and bf16", check_label_generator, sizes, device, tmp)
        run("head training, every kind", check_heads, sizes, device, tmp)
    where = "cpu, tiny sizes" if args.cpu else device
    if failed:
        sys.exit(f"\ngpu check FAILED ({where}): {'; '.join(failed)}")
    print(f"\ngpu check done ({where})")


if __name__ == "__main__":
    main()
