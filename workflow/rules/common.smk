# Config helpers, paths and target lists shared by all rules.

import os
import sys
from pathlib import Path

import pandas as pd

from spino.store import shard_count

# `spino` comes from the environment that runs Snakemake (a venv or the conda env of environment.yaml).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
STORES = ["ground_truth", "pseudo_labels", "predictions"]
SPINO_SRC = Path(workflow.basedir).parent / "spino"


wildcard_constraints:
    store="|".join(STORES),
    shard=r"\d+",


def code(*modules):
    """Source files of the spino modules a rule runs, so that editing them reruns the rule."""
    files = []
    for module in modules:
        path = SPINO_SRC / module
        files += sorted(str(p) for p in path.rglob("*.py")) if path.is_dir() else [str(path.with_suffix(".py"))]
    return files


def dataset_args():
    """Command-line options that open the configured dataset."""
    d = config["dataset"]
    args = ["--dataset-kind", d["kind"], "--dataset-root", d["root"], "--splits", *d["splits"]]
    if d.get("classes"):
        args += ["--classes", d["classes"]]
    return args


def manifest_entries():
    """The manifest's rows (after the index checkpoint has run)."""
    return pd.read_csv(checkpoints.index.get().output.manifest, keep_default_na=False)


def store_image_count(store):
    rows = manifest_entries()
    if store == "ground_truth":
        return int((rows["has_gt"] == 1).sum())
    splits = config["pseudo_labels"]["splits"] if store == "pseudo_labels" else config["panoptic"]["eval_splits"]
    return int(rows["split"].isin(splits).sum())


def shard_markers(wildcards):
    """One marker per shard of a store; the shard count follows from the manifest."""
    n = store_image_count(wildcards.store)
    per_shard = config["stores"]["images_per_shard"]
    return [f"{RESULTS}/{wildcards.store}.shards/{i}.json" for i in range(shard_count(n, per_shard))]


def final_targets():
    return [f"{RESULTS}/report/report.html"]
