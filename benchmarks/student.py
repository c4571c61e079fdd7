"""The student against its teacher: the panoptic model trained on a finished run's pseudo-labels with
each confidence setting (``panoptic.train.confidence``), scored on the val images and on the train
images nobody annotated (they have ground truth, and the model trained on their pseudo-labels),
beside the pseudo-labels' own scores on the same images.

    python benchmarks/student.py --config config/examples/cityscapes-mini.yaml
    python benchmarks/student.py --config config/examples/cityscapes-mini.yaml --steps 750 \\
        --variant none '{"instance_threshold": 0}' --variant instances '{"instance_threshold": 0.5}'
    python benchmarks/student.py --config config/examples/cityscapes-mini.yaml \\
        --pseudo-labels results/cityscapes-mini/pseudo_labels_top2.zarr --variant soft '{"semantic": "soft"}'
    python benchmarks/student.py --config config/examples/cityscapes-mini.yaml --seeds 0 1 2 --splits train \\
        --variant paper '{"instance_threshold": 0}' --variant instances '{"instance_threshold": 0.5}'

``--seeds``: train each variant once per seed (``panoptic.train.seed``) and add a table of each score's
mean and range over the seeds: a default is chosen where the seeds agree, not on one draw. ``--splits``:
score only these splits (e.g. the train images nobody annotated, to choose on train-side images and keep
the val images for reporting).

``--pseudo-labels``: train on another store of the same run's labels, e.g. one written with
``pseudo_labels.top2`` (the ``soft`` variant needs its runner-up classes); its arrays' sizes are printed.

Each variant trains with the config's panoptic settings and only its confidence section changed, on
the same pseudo-labels and steps, into ``results/<run>/student/<variant>/`` (a killed variant resumes;
a finished one is scored again, not retrained). Prints PQ, things, stuff and mIoU per split and
seconds per training step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from spino.choices import check_config
from spino.classes import IGNORE
from spino.data.manifest import read_manifest
from spino.encoding import instance_of, semantic_of
from spino.evaluate import LabelSource, score
from spino.metrics import PanopticStats
from spino.panoptic.model import ModelConfig
from spino.panoptic.predict import prediction_stats
from spino.panoptic.saved_model import load_model
from spino.panoptic.train import TrainConfig, TrainingData, train_panoptic
from spino.store import LabelStore

# Thresholds at 0.5, read off the teacher's calibration on cityscapes-mini's train images (under 0.5 a
# pixel's class is right 41 % of the time and a thing instance matches a true one 1 time in 20).
VARIANTS = {
    "none": {"semantic": "none", "instance_threshold": 0.0},
    "weight": {"semantic": "weight", "instance_threshold": 0.0},
    "threshold": {"semantic": "threshold", "pixel_threshold": 0.5, "instance_threshold": 0.0},
    "instances": {"semantic": "none", "instance_threshold": 0.5},
    "soft": {"semantic": "soft", "instance_threshold": 0.0},  # needs a store written with pseudo_labels.top2
}


def scores(stats: PanopticStats, class_set) -> dict:
    s = stats.summary(class_set)
    return {
        k: 100 * v
        for k, v in (
            ("pq", s["all"]["pq"]),
            ("things", s["things"]["pq"]),
            ("stuff", s["stuff"]["pq"]),
            ("miou", s["miou"]),
        )
    }


def model_scores(model_path: Path, gt: LabelStore, splits: dict[str, list[str]], device: str) -> dict:
    """The model's predictions at full resolution (as ``spino predict``) against the ground truth, per
    split and pooled over them (one PQ over every image: what a choice between settings is read off)."""
    model, class_set, post = load_model(model_path, device)
    paths = dict(zip(gt.image_ids, gt.meta["image_paths"]))
    stats = {}
    for split, ids in splits.items():
        items = ((paths[image_id], gt.panoptic(gt.index_of(image_id))) for image_id in ids)
        stats[split] = prediction_stats(model, items, class_set, post)
    pooled = PanopticStats(class_set.num_classes)
    for split_stats in stats.values():
        pooled += split_stats
    return {**{split: scores(s, class_set) for split, s in stats.items()}, "pooled": scores(pooled, class_set)}


def calibration(pseudo: LabelStore, gt: LabelStore, ids: list[str]) -> None:
    """How far the teacher's confidence can be trusted, on images with ground truth: pixel accuracy
    per confidence bin, and the share of its thing instances that match a true one (same class,
    IoU > 0.5) per bin of their mean confidence."""
    class_set = gt.class_set
    bins = np.array([0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01])
    right, pixels = np.zeros(len(bins) - 1), np.zeros(len(bins) - 1)
    matched, instances = np.zeros(len(bins) - 1), np.zeros(len(bins) - 1)
    for image_id in ids:
        i, j = pseudo.index_of(image_id), gt.index_of(image_id)
        label, truth = pseudo.panoptic(i), gt.panoptic(j)
        confidence = pseudo.confidence(i).astype(np.float32)
        scored = (semantic_of(truth) != IGNORE) & (semantic_of(label) != IGNORE)
        b = np.digitize(confidence[scored], bins) - 1
        pixels += np.bincount(b, minlength=len(pixels))
        right += np.bincount(b, (semantic_of(label) == semantic_of(truth))[scored], minlength=len(pixels))
        thing = class_set.thing_mask()[semantic_of(label).clip(0, class_set.num_classes - 1)]
        segments = np.unique(label[thing & (instance_of(label) > 0) & (semantic_of(label) != IGNORE)])
        for segment in segments:
            mask = label == segment
            under, overlap = np.unique(truth[mask], return_counts=True)
            same = (semantic_of(under) == semantic_of(segment)) & (instance_of(under) > 0)
            union = mask.sum() + np.array([(truth == t).sum() for t in under[same]]) - overlap[same]
            k = int(np.digitize(confidence[mask].mean(), bins) - 1)
            instances[k] += 1
            matched[k] += bool(same.any() and (overlap[same] / union).max() > 0.5)
    print("confidence bin | share of pixels | pixel accuracy | thing instances | matched")
    for k in range(len(bins) - 1):
        share = pixels[k] / max(1, pixels.sum())
        accuracy = right[k] / max(1, pixels[k])
        print(
            f"[{bins[k]:.2f}, {min(1, bins[k + 1]):.2f}) | {100 * share:.1f} % | {100 * accuracy:.1f} % | "
            f"{int(instances[k])} | {100 * matched[k] / max(1, instances[k]):.0f} %"
        )


def store_sizes(store: LabelStore) -> None:
    """Each array's bytes per image on disk (zstd-compressed shard files): what pseudo_labels.top2 costs."""
    per_image = {
        name: sum(f.stat().st_size for f in (store.path / name).rglob("*") if f.is_file()) / store.num_images
        for name in store.arrays
    }
    total = sum(per_image.values())
    print(
        f"{store.path}: {total / 1e6:.2f} MB per image: "
        + ", ".join(f"{name} {size / 1e6:.3f}" for name, size in per_image.items())
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--steps", type=int, help="override panoptic.train.steps")
    p.add_argument(
        "--variant",
        nargs=2,
        action="append",
        metavar=("NAME", "JSON"),
        help=f"a confidence section to train with (default: {', '.join(VARIANTS)})",
    )
    p.add_argument("--pseudo-labels", type=Path, help="the store to train on (default: the run's pseudo_labels.zarr)")
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[None], help="panoptic.train.seed values (default: the config's)"
    )
    p.add_argument("--splits", nargs="+", help="score only these splits (default: the eval and train splits)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    config = check_config(yaml.safe_load(args.config.read_text()))
    results = Path("results") / config["run"]
    variants = {name: json.loads(text) for name, text in args.variant} if args.variant else VARIANTS
    train = config["panoptic"]["train"] | ({"steps": args.steps} if args.steps else {})
    train_splits = config["panoptic"]["train_splits"] or [config["annotation"]["split"]]
    entries = read_manifest(results / "manifest.csv")
    gt = LabelStore(results / "ground_truth.zarr")
    splits = {
        split: [e.image_id for e in entries if e.split == split and e.has_gt and not e.annotated]
        for split in args.splits or dict.fromkeys([*config["panoptic"]["eval_splits"], *train_splits])
    }
    print(
        f"{config['run']}: {train['steps']} steps of batch {train['batch_size']}; scored on "
        + ", ".join(f"{len(ids)} {split} images" for split, ids in splits.items())
    )
    print(f"the teacher's calibration on the unannotated {', '.join(train_splits)} images (choose thresholds here):")
    calibration(LabelStore(results / "pseudo_labels.zarr"), gt, [i for s in train_splits for i in splits[s]])
    teacher, truth = LabelSource(results / "pseudo_labels.zarr"), LabelSource(results / "ground_truth.zarr")
    teacher_stats = {s: score(teacher, truth, ids)[0] for s, ids in splits.items()}
    pooled = PanopticStats(gt.class_set.num_classes)
    for split_stats in teacher_stats.values():
        pooled += split_stats
    rows = {"pseudo-labels": {s: scores(v, gt.class_set) for s, v in {**teacher_stats, "pooled": pooled}.items()}}
    pseudo = args.pseudo_labels or results / "pseudo_labels.zarr"
    store_sizes(LabelStore(pseudo))
    data = TrainingData.from_stores(results / "manifest.csv", results / "ground_truth.zarr", pseudo, train_splits, [])
    if not LabelStore(pseudo).has_runner_up:
        skipped = [name for name, v in variants.items() if v.get("semantic") == "soft"]
        variants = {name: v for name, v in variants.items() if name not in skipped}
        print(f"skipped {', '.join(skipped)}: {pseudo} holds no runner-up classes (pseudo_labels.top2)" * bool(skipped))
    runs = [(name, confidence, seed) for name, confidence in variants.items() for seed in args.seeds]
    for variant, confidence, seed in runs:
        name = variant if seed is None else f"{variant}-seed{seed}"
        folder = results / "student" / f"{name}-{train['steps']}"
        cfg = TrainConfig.from_dict({**train, "confidence": confidence} | ({} if seed is None else {"seed": seed}))
        model_cfg = ModelConfig.from_dict(config["panoptic"]["model"], config["backbone"])
        if (folder / "model.pt").exists():
            seconds = json.loads((folder / "scores.json").read_text())["s/step"]
        else:
            start = time.perf_counter()
            train_panoptic(cfg, model_cfg, data, folder / "checkpoints", folder / "model.pt", args.device, args.workers)
            seconds = (time.perf_counter() - start) / cfg.steps  # a resumed variant: its last stretch only
            (folder / "scores.json").write_text(json.dumps({"s/step": seconds}))
        rows[name] = {**model_scores(folder / "model.pt", gt, splits, args.device), "s/step": seconds}
        (folder / "scores.json").write_text(json.dumps(rows[name], indent=1))
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    columns = [*splits, "pooled"]
    print("\n| confidence | " + " | ".join(f"{s}: PQ / things / stuff / mIoU" for s in columns) + " | s/step |")
    print("|---|" + "---|" * (len(columns) + 1))
    for name, row in rows.items():
        cells = [" / ".join(f"{row[s][k]:.1f}" for k in ("pq", "things", "stuff", "miou")) for s in columns]
        step = f"{row['s/step']:.2f}" if "s/step" in row else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {step} |")
    if len(args.seeds) > 1:
        seed_table(rows, variants, args.seeds, columns)


def seed_table(rows: dict, variants: dict, seeds: list[int], columns: list[str]) -> None:
    """Each variant's scores over the seeds: mean (min to max) of PQ, things, stuff and mIoU per split."""
    print(
        f"\n| confidence ({len(seeds)} seeds: mean, min-max) | "
        + " | ".join(f"{s}: PQ / things / mIoU" for s in columns)
        + " |"
    )
    print("|---|" + "---|" * len(columns))
    for variant in variants:
        seeded = [rows[f"{variant}-seed{seed}"] for seed in seeds]
        cells = []
        for split in columns:
            values = {k: np.array([r[split][k] for r in seeded]) for k in ("pq", "things", "miou")}
            cells.append(" / ".join(f"{v.mean():.2f} ({v.min():.1f}-{v.max():.1f})" for v in values.values()))
        print(f"| {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
