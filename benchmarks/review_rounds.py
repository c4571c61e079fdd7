"""Review rounds on real images: from the same first annotations, rounds of k more images chosen by
``review`` (the teacher's doubt, with diversity), by descriptor coverage (``suggest``'s k-center,
continued from the images already annotated) and at random, the ground truth standing in for the
annotator. After each round: the pseudo-labels' PQ / things / stuff / mIoU on the scored images, and
"already right": the share of the chosen images' ground-truth segments that their pre-drawn labels
(the previous round's pseudo-labels) already match (same class, IoU > 0.5), the segments an annotator
only checks instead of drawing.

    python benchmarks/review_rounds.py --config config/examples/cityscapes-mini.yaml --rounds 2 --k 10 \\
        --set semantic_head.input_size='[256, 512]' --set boundary_head.input_size='[256, 512]'

Each round is a run of the workflow (``results/<run>-rounds-<strategy>-<n>/``, round 0 shared), up to
the pseudo-labels' scores; the panoptic model is not trained, so ``review`` chooses without its
disagreement term. The heads train the same number of steps every round (epochs scaled by the first
count over the annotated count): rounds differ by what the heads see, not by how long they train.
A finished round is read again, not rerun. Prints one table row per strategy and round, and writes
them to ``results/<run>-rounds.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from spino.choices import check_config
from spino.data.manifest import read_manifest
from spino.evaluate import LabelSource, score
from spino.features import read_features
from spino.review import candidates, choose, reviewable
from spino.store import LabelStore

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("review", "suggest", "random")


def set_value(config: dict, assignment: str) -> None:
    """``a.b.c=<yaml>`` into the config."""
    key, _, text = assignment.partition("=")
    *path, last = key.split(".")
    for part in path:
        config = config.setdefault(part, {})
    config[last] = yaml.safe_load(text)


def workflow_run(config: dict, cores: int) -> Path:
    """The run of ``config`` up to its pseudo-labels' scores and the image descriptors; its results folder."""
    results = Path("results") / config["run"]
    path = Path("results") / f"{config['run']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    targets = [f"{results}/scores/pseudo_labels.json", f"{results}/features.h5"]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--configfile"]
    done = subprocess.run([*command, str(path), "--cores", str(cores), "--", *targets], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{config['run']}: the workflow failed:\n{done.stderr[-3000:]}")
    return results


def pseudo_label_scores(results: Path) -> dict:
    summary = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]
    return {
        "images": summary["images"],
        "pq": 100 * summary["all"]["pq"],
        "things": 100 * summary["things"]["pq"],
        "stuff": 100 * summary["stuff"]["pq"],
        "miou": 100 * summary["miou"],
    }


def already_right(results: Path, image_ids: list[str]) -> float:
    """% of the images' ground-truth segments a pseudo-label segment matches (same class, IoU > 0.5)."""
    stats, _ = score(LabelSource(results / "pseudo_labels.zarr"), LabelSource(results / "ground_truth.zarr"), image_ids)
    tp, fn = stats.tp.sum(), stats.fn.sum()
    return float(100 * tp / max(1, tp + fn))


def choose_next(strategy: str, results: Path, k: int, seed: int, scored: list[str]) -> list[str]:
    """The k images a strategy sends next, from the images of the run that are not annotated and do not score it."""
    entries = read_manifest(results / "manifest.csv")
    annotated = [e.image_id for e in entries if e.annotated]
    pool = reviewable(entries, scored)
    ids, _, vectors = read_features(results / "features.h5")
    features = dict(zip(ids, vectors))
    if strategy == "random":
        return [pool[i] for i in sorted(np.random.default_rng(seed).choice(len(pool), k, replace=False))]
    if strategy == "suggest":  # k-center continued: each time the image farthest from every one annotated
        chosen: list[str] = []
        for _ in range(k):
            near = [features[i] for i in annotated + chosen]
            far = max(
                (i for i in pool if i not in chosen),
                key=lambda i: min(np.linalg.norm(features[i] - f) for f in near),
            )
            chosen.append(far)
        return chosen
    found = candidates(LabelStore(results / "pseudo_labels.zarr"), pool)
    return [c.candidate.image_id for c in choose(found, k, features, annotated)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="a setting changed for every round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--k", type=int, default=10, help="images per round")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--seed", type=int, default=0, help="the random strategy's draws")
    p.add_argument("--cores", type=int, default=2)
    args = p.parse_args()
    base = yaml.safe_load(args.config.read_text())
    for assignment in args.set:
        set_value(base, assignment)
    name = base["run"]
    checked = check_config(copy.deepcopy(base))
    scored = [*checked["panoptic"]["eval_splits"], *(checked["evaluation"]["splits"] or [])]
    epochs = {head: checked[head]["epochs"] for head in ("semantic_head", "boundary_head")}

    def run_round(label: str, ids: list[str] | None) -> Path:
        config = copy.deepcopy(base) | {"run": f"{name}-rounds-{label}"}
        if ids is not None:
            config["annotation"] = {"split": checked["annotation"]["split"], "ids": ids}
            for head, n in epochs.items():
                config[head] = {**config.get(head, {}), "epochs": max(1, round(n * len(first) / len(ids)))}
        return workflow_run(config, args.cores)

    zero = run_round("0", None)
    first = [e.image_id for e in read_manifest(zero / "manifest.csv") if e.annotated]
    rows = [{"strategy": "-", "round": 0, "annotated": len(first), **pseudo_label_scores(zero), "already_right": None}]
    print(json.dumps(rows[0]), flush=True)
    state = {strategy: (zero, list(first)) for strategy in args.strategies}
    for number in range(1, args.rounds + 1):  # each round of every strategy before the next round
        for strategy in args.strategies:
            previous, annotated = state[strategy]
            chosen = choose_next(strategy, previous, args.k, args.seed + number, scored)
            right = already_right(previous, chosen)
            annotated = annotated + chosen
            state[strategy] = run_round(f"{strategy}-{number}", annotated), annotated
            row = {"strategy": strategy, "round": number, "annotated": len(annotated)}
            rows.append(row | pseudo_label_scores(state[strategy][0]) | {"already_right": right, "chosen": chosen})
            print(json.dumps(rows[-1]), flush=True)
    Path(f"results/{name}-rounds.json").write_text(json.dumps(rows, indent=1))
    print("\n| round | chosen by | annotated | PQ | things | stuff | mIoU | already right |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["round"], STRATEGIES.index(r["strategy"]) if r["round"] else 0)):
        right = "" if r["already_right"] is None else f"{r['already_right']:.0f} %"
        print(
            f"| {r['round']} | {r['strategy']} | {r['annotated']} | {r['pq']:.1f} | {r['things']:.1f} | "
            f"{r['stuff']:.1f} | {r['miou']:.1f} | {right} |"
        )


if __name__ == "__main__":
    main()
