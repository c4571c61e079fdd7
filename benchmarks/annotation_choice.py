"""Which k images to annotate, measured: suggested (`snakemake suggest`) vs random (several seeds) vs
the first image of each city, each choice trained and scored the same way.

    python benchmarks/annotation_choice.py --config config/examples/cityscapes-mini.yaml

Every choice is a run of the workflow (results/<run>-choice-<name>/) from the base config with
only its `annotation` changed and a cheaper shared protocol: both heads for ``--epochs-scale`` of
their configured epochs, pseudo-labels of the ``evaluation.splits`` images only, at scale 1 of
each head. Prints PQ / things PQ / mIoU of those pseudo-labels on the evaluation images (which no
choice annotates), the feature coverage of each choice, and the mean and spread of the random ones.
The runs are cached like any other: a second call only prints.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import yaml

from spino.data.manifest import read_manifest
from spino.features import read_features
from spino.suggest import coverage


def snakemake(config: Path, targets: list[str], cores: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *targets,
            "--configfile",
            str(config),
            "--cores",
            str(cores),
            "--quiet",
            "progress",
        ],
        check=True,
    )


def first_of_each_city(image_ids: list[str], k: int) -> list[str]:
    """The first image (sorted) of each city (the id's prefix before '_'), cities in sorted order, k of them."""
    firsts: OrderedDict[str, str] = OrderedDict()
    for image_id in sorted(image_ids):
        firsts.setdefault(image_id.split("_")[0], image_id)
    if len(firsts) < k:
        raise SystemExit(f"only {len(firsts)} cities for k={k}")
    return list(firsts.values())[:k]


def choice_config(base: dict, name: str, annotation: dict, epochs_scale: float) -> dict:
    cfg = copy.deepcopy(base)
    cfg["run"] = f"{base['run']}-choice-{name}"
    cfg["annotation"] = annotation
    for head in ("semantic_head", "boundary_head"):
        cfg[head]["epochs"] = max(1, round(cfg[head]["epochs"] * epochs_scale))
    cfg["pseudo_labels"].update(splits=list(cfg["evaluation"]["splits"]), semantic_scales=[1], boundary_scales=[1])
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config/examples/cityscapes-mini.yaml"))
    parser.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs-scale", type=float, default=0.5)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--workdir", type=Path, default=Path("results/annotation-choice"), help="where the generated configs go"
    )
    args = parser.parse_args()

    base = yaml.safe_load(args.config.read_text())
    results = Path("results") / base["run"]
    split = base["annotation"]["split"]
    snakemake(args.config, [f"{results}/suggest/annotation.yaml", f"{results}/manifest.csv"], args.cores)
    suggested = yaml.safe_load((results / "suggest/annotation.yaml").read_text())["annotation"]
    k = len(suggested["ids"])
    candidates = sorted(e.image_id for e in read_manifest(results / "manifest.csv") if e.split == split and e.has_gt)
    choices = {"suggested": suggested, "first-of-each-city": {"split": split, "ids": first_of_each_city(candidates, k)}}
    choices.update({f"random-{s}": {"split": split, "k": k, "seed": s} for s in args.random_seeds})

    ids, _, features = read_features(results / "features.h5")
    position = {image_id: i for i, image_id in enumerate(ids)}
    pool = [position[i] for i in candidates]
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, annotation in choices.items():
        cfg = choice_config(base, name, annotation, args.epochs_scale)
        path = args.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        scores_file = Path("results") / cfg["run"] / "scores/pseudo_labels.json"
        snakemake(path, [str(scores_file)], args.cores)
        summary = json.loads(scores_file.read_text())["summary"]
        annotated = [e.image_id for e in read_manifest(Path("results") / cfg["run"] / "manifest.csv") if e.annotated]
        chosen = [pool.index(position[i]) for i in annotated]
        rows[name] = (summary["all"]["pq"], summary["things"]["pq"], summary["miou"], coverage(features[pool], chosen))
        print(f"{name}: {', '.join(sorted(annotated))}", flush=True)

    print(f"\n{'choice':<22}{'PQ':>7}{'things':>8}{'mIoU':>7}{'coverage':>10}")
    for name, (pq, things, miou, cover) in rows.items():
        print(f"{name:<22}{100 * pq:7.1f}{100 * things:8.1f}{100 * miou:7.1f}{cover:10.4f}")
    random = np.array([rows[f"random-{s}"] for s in args.random_seeds])
    mean, std = random.mean(0), random.std(0)
    spread = "  ".join(f"{100 * m:.1f} ({100 * d:.1f})" for m, d in zip(mean[:3], std[:3]))
    print(f"{'random: mean (std)':<22}{spread}  coverage {mean[3]:.4f}")


if __name__ == "__main__":
    main()
