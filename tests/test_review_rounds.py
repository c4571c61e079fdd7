"""The review story on the demo, as a user plays it: a finished run, `snakemake review`, the chosen
images corrected (here: to their ground truth) and exported as CVAT exports them, the export added to
annotation.corrections; the dry run plans only what depends on the labels, and the rerun's scores
move from the previous round's, side by side in the report."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.manifest import read_manifest
from spino.prelabels import PreLabel, write_cvat_coco

from helpers import AFTER_THE_HEADS, TINY, planned_rules, snakemake

LABEL_DEPENDENT = {
    "index",
    "create_ground_truth_store",
    "write_gt",
    "train_semantic_head",
    "train_boundary_head",
} | AFTER_THE_HEADS


@pytest.mark.e2e
def test_a_corrected_review_round_reruns_what_depends_on_the_labels_and_moves_the_scores(
    finished_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    results = run / "results" / "tiny"
    # the pseudo-labels scored on the val images only (the tiny run scores the unannotated train images
    # too, which a round takes away), and a semantic head wide and long enough to learn from what it is
    # given (the tiny run's, 16 wide for 15 epochs, scores about as well from 4 images as from 2)
    config = copy.deepcopy(TINY) | {"review": {"k": 2}, "evaluation": {"splits": ["val"]}}
    config["semantic_head"] = {**config["semantic_head"], "hidden": [64, 64], "epochs": 40}
    result = snakemake(run, config, "all", "review")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(results / "review" / "round-1" / "chosen.csv") as f:
        chosen = [row["image_id"] for row in csv.DictReader(f)]
    entries = {e.image_id: e for e in read_manifest(results / "manifest.csv")}
    assert len(chosen) == 2 and not any(entries[i].annotated for i in chosen)
    assert {entries[i].split for i in chosen} == {"train"}  # never the val images that score the run

    # the annotator corrects the pre-drawn labels to the truth; CVAT exports COCO 1.0
    demo = open_dataset("demo", run / "resources" / "demo-tiny")
    truth = {r.image_id: (r, demo.read_panoptic(r)) for r in demo.scan()}
    labels = [PreLabel(i, Path(truth[i][0].image), truth[i][1], np.ones(truth[i][1].shape, np.float32)) for i in chosen]
    write_cvat_coco(run / "exports" / "round-1", labels, DEMO)
    before = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]

    config["annotation"] = {**config["annotation"], "corrections": ["exports/round-1"]}
    plan = planned_rules(snakemake(run, config, "-n"))
    # not the demo's images nor their descriptors; the per-shard jobs follow the index (a checkpoint:
    # Snakemake plans them once it has rerun, as the run below does)
    assert plan - {"all"} == LABEL_DEPENDENT - {"write_gt", "pseudo_label", "predict"}

    result = snakemake(run, config)
    assert result.returncode == 0, result.stderr[-2000:]
    rounds = {e.image_id: e.round for e in read_manifest(results / "manifest.csv") if e.annotated}
    assert sorted(i for i, r in rounds.items() if r == 1) == sorted(chosen) and len(rounds) == 4
    after = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]
    assert after["images"] == before["images"] == 3  # the same val images, scored before and after
    # measured here: PQ 47.8 -> 53.6, mIoU 60.5 -> 67.5 (CPU kernels move the last digits between machines)
    assert after["all"]["pq"] > before["all"]["pq"] + 0.03 and after["miou"] > before["miou"] + 0.04

    report = (results / "report" / "report.html").read_text()
    table = report.split("<h2>Review rounds</h2>")[1].split("</table>")[0]
    assert "<tr><th>0</th><td>2</td>" in table and "<tr><th>1</th><td>4</td>" in table
    assert f"<td>{100 * before['all']['pq']:.1f}</td>" in table and f"<td>{100 * after['all']['pq']:.1f}</td>" in table
    again = snakemake(run, config, "review", "-n")  # the next round is round 2
    assert "review/round-2" in again.stdout
