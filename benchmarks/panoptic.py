"""Panoptic model cost for a config: training step time, inference time per image, peak memory,
and training with its real input pipeline: steps per second with 0 and 2 DataLoader workers and the
share of a step spent waiting for data.

    python benchmarks/panoptic.py --config config/config.yaml
    python benchmarks/panoptic.py --config config/cityscapes.yaml --weights none --steps 3
    python benchmarks/panoptic.py --config config/examples/cityscapes-mini.yaml --results results/cityscapes-mini
    python benchmarks/panoptic.py --config config/examples/cityscapes-mini-solov2.yaml --instance center_offset solov2
    python benchmarks/panoptic.py --config config/examples/cityscapes-mini-solov2.yaml --instance center_offset solov2 \
        --results results/cityscapes-mini --models results/cityscapes-mini/panoptic/model.pt \
        results/cityscapes-mini-solov2/panoptic/model.pt

The compute figures use one batch of random images and targets at the config's input size and
batch size, built once (the cost does not depend on the data). Inference with random weights is
no measure of post-processing, whose cost follows what the model finds (random weights find
centres or cells everywhere, or nowhere): ``--models`` times trained models (one per method) on the
real images of ``--results`` instead, and the comparison uses those. The input-pipeline figures read
real files through the training DataLoader: a finished run's stores (``--results``), or else
synthetic PNG images and a label store at ``--image-size`` (Cityscapes: 1024 x 2048) written to a
temporary folder, so that decoding, resizing and target building cost what they cost in training.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from spino.classes import CITYSCAPES_19, DEMO
from spino.data.io import read_image, write_png
from spino.data.manifest import read_manifest
from spino.encoding import LABEL_DIVISOR, semantic_of
from spino.panoptic.instances import INSTANCE_METHODS
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.predict import predict_panoptic
from spino.panoptic.sampler import MixedBatchData, Sample, batch_loader, samples_from
from spino.panoptic.saved_model import load_model
from spino.panoptic.train import TrainConfig, losses
from spino.store import LabelStore, create_store
from spino.transforms import image_tensor


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


def synthetic_samples(
    root: Path, n: int, size: tuple[int, int], class_set, rng: np.random.Generator
) -> tuple[list[Sample], list[Sample]]:
    """``n`` PNG images (class colours plus noise, so they decode like photos, not like flat fills) and
    a complete label store of their maps: 2 ground-truth samples and the rest as pseudo-labels."""
    colours = rng.integers(0, 232, (256, 3), dtype=np.uint8)
    maps, paths = [], []
    for i in range(n):
        pan = synthetic_label(rng, size, class_set)
        paths.append(str(root / f"{i}.png"))
        write_png(paths[-1], colours[semantic_of(pan)] + rng.integers(0, 24, (*size, 3), dtype=np.uint8))
        maps.append(pan)
    ids = [str(i) for i in range(n)]
    store = create_store(root / "labels.zarr", ids, *size, class_set, 4, extra_attrs={"image_paths": paths})
    for k in range(store.num_shards):
        shard = store.shard(k)
        pan = np.stack(maps[shard.start : shard.stop])
        store.write_shard(k, semantic_of(pan), pan)
    store.finalize()
    samples = samples_from(store, ids)
    return samples[:2], samples[2:]


def run_samples(results: Path) -> tuple[list[Sample], list[Sample]]:
    """The annotated ground truth and the pseudo-labels of a finished run, as train-panoptic reads them."""
    entries = read_manifest(results / "manifest.csv")
    annotated = [e.image_id for e in entries if e.annotated]
    pseudo = LabelStore(results / "pseudo_labels.zarr")
    return samples_from(LabelStore(results / "ground_truth.zarr"), annotated), samples_from(
        pseudo, [i for i in pseudo.image_ids if i not in set(annotated)]
    )


def trained_inference(args: argparse.Namespace) -> dict[str, float]:
    """Each of ``--models``'s method -> its median seconds per image (post-processing included, at
    each image's size, as ``spino predict``) on the last ``--images`` ground-truth images of
    ``--results``. The models take turns on each image, so that the machine's drift in speed
    touches all alike."""
    device = torch.device(args.device)
    models = {}
    for path in args.models:
        model, class_set, post = load_model(path, device)
        models[model.cfg.instance] = (model, class_set, post)
    paths = LabelStore(args.results / "ground_truth.zarr").meta["image_paths"][-args.images :]
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for turn in range(3):  # the first a warm-up
            for path in paths:
                image = read_image(path)
                for name, (model, class_set, post) in models.items():
                    x = image_tensor(image, model.cfg.input_size, device)
                    start = time.perf_counter()
                    predict_panoptic(model, x, class_set, post, image.shape[:2])
                    if turn:
                        times[name].append(time.perf_counter() - start)
    for name, path in zip(models, args.models):
        print(
            f"inference incl. post-processing of {path} ({name}) on the last {len(paths)} ground-truth images of "
            f"{args.results}, at their size: {np.median(times[name]):.3f} s per image (median)"
        )
    print()
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def measure(args: argparse.Namespace, config: dict, instance: str) -> dict:
    """The figures of one instance method on this config; prints them."""
    backbone = {**config["backbone"], **({"weights": args.weights} if args.weights else {})}
    model_settings = {**config["panoptic"]["model"], "instance": instance}
    model_cfg = ModelConfig.from_dict(model_settings, backbone)
    train_cfg = TrainConfig.from_dict(config["panoptic"]["train"])
    class_set = CITYSCAPES_19 if config["dataset"]["kind"] == "cityscapes" else DEMO
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = PanopticModel(model_cfg, class_set.num_classes).to(device)
    optimizer = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=train_cfg.lr)
    rng = np.random.default_rng(0)
    size = model_cfg.input_size
    method = model.instance_method
    start = time.perf_counter()
    targets = [
        method.targets(synthetic_label(rng, size, class_set), class_set, train_cfg.targets)
        for _ in range(train_cfg.batch_size)
    ]
    targets_s = (time.perf_counter() - start) / train_cfg.batch_size
    fixed = {k: torch.stack([t[k] for t in targets]) for k in targets[0]}
    fixed["image"] = torch.rand((train_cfg.batch_size, 3, *size)) * 255
    amp = train_cfg.amp and device.type == "cuda"

    def step(batch: dict[str, torch.Tensor]) -> float:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(batch["image"])
        loss = losses(out, batch, train_cfg, method)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # as training logs it: waits for the device

    def timed(fn, n: int) -> float:
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    def through_loader(data: MixedBatchData, workers: int) -> tuple[float, float]:
        """(steps per second, share of each step spent waiting for its batch), after one warm-up step."""
        batches = iter(
            batch_loader(data, 0, args.pipeline_steps + 1, range(data.batch_size), workers, device.type == "cuda")
        )
        step(next(batches))
        waited, start = 0.0, time.perf_counter()
        for _ in range(args.pipeline_steps):
            asked = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - asked
            step(batch)
        total = time.perf_counter() - start
        return args.pipeline_steps / total, waited / total

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    train_s = timed(lambda: step(fixed), args.steps)
    pipeline = {}
    if args.pipeline_steps:
        with tempfile.TemporaryDirectory() as tmp:
            if args.results:
                ground_truth, pseudo = run_samples(args.results)
                source = f"stores of {args.results}"
            else:
                ground_truth, pseudo = synthetic_samples(Path(tmp), 10, tuple(args.image_size), class_set, rng)
                source = f"synthetic {args.image_size[1]}x{args.image_size[0]} PNG files"
            data = MixedBatchData(
                ground_truth,
                pseudo,
                class_set,
                size,
                train_cfg.batch_size,
                0,
                train_cfg.augment,
                train_cfg.targets,
                method,
            )
            pipeline = {workers: through_loader(data, workers) for workers in (0, 2)}
    model.eval()
    image = fixed["image"][0].to(device)  # predict_panoptic takes the image on the model's device
    with torch.inference_mode():
        forward_s = timed(lambda: model(image[None]), args.images)
    infer_s = timed(
        lambda: predict_panoptic(model, image, class_set, train_cfg.postprocess, tuple(args.image_size)), args.images
    )
    print(
        f"config {args.config}  instance {model_cfg.instance}  backbone {backbone['name']}  input {size[1]}x{size[0]}  "
        f"batch {train_cfg.batch_size}  "
        f"device {device}  threads {torch.get_num_threads()}  amp {amp}"
    )
    print(f"trainable parameters: {sum(q.numel() for q in model.parameters() if q.requires_grad) / 1e6:.2f} M")
    print(f"targets of one training sample: {targets_s:.3f} s")
    print(f"training step, one batch built up front: {train_s:.3f} s  ({1 / train_s:.2f} steps/s)")
    for workers, (rate, waiting) in pipeline.items():
        print(
            f"training through the DataLoader, {workers} workers ({source}): {rate:.2f} steps/s, "
            f"{100 * waiting:.0f} % of each step waiting for data"
        )
    print(f"forward pass alone at the input size: {forward_s:.3f} s per image")
    print(
        f"inference incl. post-processing at {args.image_size[1]}x{args.image_size[0]}, random weights: "
        f"{infer_s:.3f} s per image"
    )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print()
    return {"instance": model_cfg.instance, "train": train_s, "infer": infer_s, "targets": targets_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--weights", default=None, help="override backbone.weights (e.g. none)")
    p.add_argument("--steps", type=int, default=5, help="training steps timed on one fixed batch")
    p.add_argument(
        "--pipeline-steps",
        type=int,
        default=12,
        help="training steps timed through the DataLoader, per worker count (0: not measured)",
    )
    p.add_argument("--images", type=int, default=5, help="images timed for inference")
    p.add_argument("--results", type=Path, help="a finished run (results/<run>) whose stores feed the input pipeline")
    p.add_argument(
        "--image-size", type=int, nargs=2, default=(1024, 2048), help="full image size (synthetic files; inference)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--instance",
        nargs="+",
        choices=sorted(INSTANCE_METHODS),
        help="override panoptic.model.instance; several: each measured, the others compared with the first",
    )
    p.add_argument(
        "--models",
        type=Path,
        nargs="+",
        help="saved models (model.pt), one per --instance method: inference timed with trained weights on "
        "the real images of --results",
    )
    args = p.parse_args()
    if args.models and not args.results:
        p.error("--models needs --results: the run whose ground-truth images they predict")
    config = yaml.safe_load(args.config.read_text())
    instances = args.instance or [ModelConfig.from_dict(config["panoptic"]["model"], config["backbone"]).instance]
    trained = trained_inference(args) if args.models else {}
    for instance in instances if trained else []:  # before the minutes of measuring
        if instance not in trained:
            raise SystemExit(f"--models: none of them is a {instance} model")
    figures = [measure(args, config, instance) for instance in instances]
    for figure in figures if trained else []:
        figure["infer"] = trained[figure["instance"]]
    base = figures[0]
    for other in figures[1:]:
        print(
            f"{other['instance']} / {base['instance']}: training step {other['train'] / base['train']:.2f}x, "
            f"inference per image ({'trained models' if args.models else 'random weights'}) {other['infer'] / base['infer']:.2f}x, "
            f"targets per sample {other['targets'] / base['targets']:.2f}x"
        )


if __name__ == "__main__":
    main()
