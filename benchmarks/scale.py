"""How spino's cost grows with the number of images: the whole workflow on the demo at each N.

    python benchmarks/scale.py --sizes 52 520 2080 --work /tmp/spino-scale [--images-per-shard 16] [--cores 2]
    python benchmarks/scale.py --config config/cityscapes.yaml --sizes 100 --gpu --work /tmp/spino-e2e \
        --set backbone.weights=none demo.height=1024 demo.width=2048 panoptic.train.steps=200

For each N: a config's settings (default: the tiny run's, .test/config/config.yaml: 64 x 128 images,
small heads, 6 panoptic steps; --set overrides any setting) on the demo at N synthetic images (train
and val as the demo's 40:12; 10 of train annotated where the config picks its images otherwise), run
whole by Snakemake under profiles/default, on the CPU, or with --gpu every stage on the GPU (random
DINOv2-shaped weights with backbone.weights=none: the costs do not depend on them). Prints, per rule, from Snakemake's benchmark files: its jobs, seconds
summed over them, seconds per image, the median job's peak RSS (MB); per label store, bytes per
image on disk; the seconds of planning (a dry run before the run, and of the finished workflow, which
every `snakemake` call pays) and of one `spino` job's start (Python importing torch, timm and the
labeller). With several sizes, the last columns compare the two largest: per-image seconds (total
seconds for the training rules, whose work is their steps, not the images) and peak RSS, largest over
second largest. The runs are kept in --work (delete it after); a size whose run is there already
is read, not run again (its run's seconds kept in run.json beside it), so sizes can be added later.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spino.report import job_benchmarks  # noqa: E402
from spino.store import LabelStore  # noqa: E402

TRAINING = {"train_semantic_head", "train_boundary_head", "train_embedding_head", "self_train", "train_panoptic"}
STORES = ("ground_truth", "pseudo_labels", "predictions")


def config_for(n: int, base: Path, overrides: list[str], images_per_shard: int | None, gpu: bool) -> dict:
    """``base``'s settings on ``n`` demo images, 40:12 train:val as the demo, with ``overrides``
    (``dotted.key=YAML value``)."""
    config = yaml.safe_load(base.read_text())
    n_train = round(n * 40 / 52)
    config["run"] = f"scale-{n}"
    config["dataset"] = {"kind": "demo", "root": f"resources/demo-scale-{n}", "splits": ["train", "val"]}
    config["demo"] = {**config.get("demo", {}), "n_train": n_train, "n_val": n - n_train}
    annotation = config.get("annotation", {})
    if "k" not in annotation:  # a config that names its images (indices, ids) names another dataset's
        config["annotation"] = {"split": "train", "k": min(10, n_train), "seed": 0}
    for section in ("pseudo_labels", "panoptic", "evaluation"):
        config.setdefault(section, {}).pop("splits", None)
    config["panoptic"].update(train_splits=["train"], eval_splits=["val"])
    if images_per_shard:
        config["stores"] = {"images_per_shard": images_per_shard}
    config["gpus"] = {stage: int(gpu) for stage in ("heads", "pseudo_label", "panoptic", "predict")}
    for override in overrides:
        key, value = override.split("=", 1)
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return config


def snakemake(work: Path, config: Path, cores: int, gpu: bool, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds and result of Snakemake on ``work`` under profiles/default (the CPU only, unless ``gpu``)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
    command += ["--profile", str(REPO / "profiles" / "default"), "--directory", str(work), "--configfile", str(config)]
    start = time.perf_counter()
    done = subprocess.run([*command, "--cores", str(cores), *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def job_start() -> float:
    """Seconds a `spino` labelling job spends before its first image: the interpreter and its imports."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import spino.labelgen.pseudolabel, spino.commands.pseudo_label"], check=True)
    return time.perf_counter() - start


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(n: int, work: Path, args: argparse.Namespace) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(config_for(n, args.config, args.set, args.images_per_shard, args.gpu)))
    cores, gpu = args.cores, args.gpu
    record = work / "run.json"
    fresh = not record.is_file()
    if not fresh:  # measured before: its run's seconds (the code may have changed since: not rerun)
        planned, ran = (json.loads(record.read_text())[k] for k in ("plan", "run"))
    else:
        planned, _ = snakemake(work, config, cores, gpu, "-n")
        ran, done = snakemake(work, config, cores, gpu)
        if done.returncode:
            sys.exit(f"the run at N={n} failed:\n{done.stderr[-3000:]}")
        record.write_text(json.dumps({"plan": planned, "run": ran}))
    replanned, again = snakemake(work, config, cores, gpu, "-n")
    assert not fresh or "Nothing to be done" in again.stdout, again.stdout[-2000:]
    results = work / "results" / f"scale-{n}"
    stores = {}
    for name in STORES:
        store = results / f"{name}.zarr"
        if store.is_dir():
            stores[name] = disk_bytes(store) / LabelStore(store).num_images
    rules = {  # seconds summed, the median job's peak RSS (one job's peak is noisy: psutil samples it), jobs
        rule: (sum(s for s, _ in runs), statistics.median(m for _, m in runs), len(runs))
        for rule, runs in job_benchmarks(results).items()
    }
    return {"n": n, "run": ran, "plan": planned, "replan": replanned, "rules": rules, "stores": stores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[52, 520, 2080])
    p.add_argument("--work", type=Path, required=True, help="where the runs go (one folder per size; delete after)")
    p.add_argument("--images-per-shard", type=int, help="stores.images_per_shard (default: the config's)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--config", type=Path, default=REPO / ".test" / "config" / "config.yaml", help="whose settings")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings over the config's (YAML values)")
    p.add_argument("--gpu", action="store_true", help="every stage on the GPU (config gpus: 1)")
    args = p.parse_args()
    start = job_start()
    runs = []
    for n in args.sizes:
        runs.append(measure(n, args.work / f"n{n}", args))
        print(f"N={n}: whole run {runs[-1]['run']:.0f} s", flush=True)
    print(f"one spino job's start (imports): {start:.1f} s; cores {args.cores}")
    print(f"{'N':>6}{'whole run s':>13}{'plan s':>8}{'replan s':>10}")
    for r in runs:
        print(f"{r['n']:>6}{r['run']:>13.1f}{r['plan']:>8.1f}{r['replan']:>10.1f}")
    rules = list(dict.fromkeys(rule for r in runs for rule in r["rules"]))
    head = "".join(f"{'jobs':>6}{'s':>8}{'s/img':>8}{'MB':>6}" for _ in runs)
    print(f"{'rule':<28}" + head + ("   cost x   RSS x" if len(runs) > 1 else ""))
    print(f"{'':<28}" + "".join(f"{'N=' + str(r['n']):>28}" for r in runs))
    for rule in rules:
        cells, cost, rss = "", [], []
        for r in runs:
            s, mb, jobs = r["rules"].get(rule, (0.0, 0.0, 0))
            cells += f"{jobs:>6}{s:>8.1f}{s / r['n']:>8.3f}{mb:>6.0f}"
            cost.append(s if rule in TRAINING else s / r["n"])
            rss.append(mb)
        ratio = ""
        if len(runs) > 1 and cost[-2] > 0 and rss[-2] > 0:
            ratio = f"{cost[-1] / cost[-2]:>9.2f}{rss[-1] / rss[-2]:>7.2f}"
        print(f"{rule:<28}{cells}{ratio}")
    print(
        "bytes per image on disk: "
        + "; ".join(f"N={r['n']}: " + ", ".join(f"{k} {v / 1e3:.1f} kB" for k, v in r["stores"].items()) for r in runs)
    )


if __name__ == "__main__":
    main()
