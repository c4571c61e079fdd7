"""Stages 6-7 through the workflow: the panoptic model bit-identical to its recorded fingerprint,
SOLOv2 end to end, training from step 0 on new pseudo-labels or --forcerun, a killed training resumed."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import TINY, copy_of, planned_rules, snakemake, snakemake_command

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("on_the_cpu")]


# The tiny run's panoptic model as Panoptic-DeepLab trained it before it moved behind the instance-method
# interface (commit 9765c70): sha256 of the weights' bytes in state-dict order, and of losses.csv.
# CPU kernels differ in their last bits between instruction sets, and between CPUs of one instruction
# set (oneDNN picks kernels by model): the run must give one of the pairs recorded with that set. The
# second pair is main at 8a0c86f, unchanged, rerun on an AMD EPYC (AVX512) machine where CI also runs.
FINGERPRINTS = {
    "AVX512": {
        (
            "bd02dcfb0520ef113db30b4ca455c1d9138d53c5f0882743038fcce02a07cf06",
            "bb559bf62b0ebbbf05b92b5d539b94409b423df34309cee14b7176b7b1552e33",
        ),
        (
            "e7740dfc39f6ec848f044bab3b9300a1ae5e0519047d22826a739d6e60b59cc6",
            "136f8e7b9521c3c21d3c4329bddceff2bf9c31e4562f4e223ec2e4d36bbf934b",
        ),
    }
}


def test_center_offset_model_is_bit_identical_behind_the_instance_interface(finished_run: Path) -> None:
    import hashlib

    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in FINGERPRINTS:
        pytest.skip(f"fingerprints recorded with {', '.join(FINGERPRINTS)} kernels; this CPU runs {capability}")
    panoptic = finished_run / "results" / "tiny" / "panoptic"
    weights = hashlib.sha256()
    for value in torch.load(panoptic / "model.pt", weights_only=True)["model"].values():
        weights.update(value.contiguous().numpy().tobytes())
    losses = hashlib.sha256((panoptic / "losses.csv").read_bytes()).hexdigest()
    assert (weights.hexdigest(), losses) in FINGERPRINTS[capability]


def test_solov2_instances_run_end_to_end(finished_run: Path, tmp_path: Path) -> None:
    """panoptic.model.instance: solov2 trains, predicts, scores and reports with the same machinery,
    on a copy of the finished tiny run: only the panoptic stages run again (the copy keeps Snakemake's
    timestamps and provenance, or the index and heads would run too)."""
    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(TINY)
    config["panoptic"]["model"]["instance"] = "solov2"
    config["panoptic"]["model"]["solov2"] = {
        "grids": [12, 8, 6],
        "strides": [8, 16, 32],
        "scale_ranges": [[0, 0.3], [0.15, 0.6], [0.3, 10]],
    }
    panoptic_stages = {"train_panoptic", "create_prediction_store", "predict", "gather", "evaluate", "report", "all"}
    assert planned_rules(snakemake(run, config, "-n")) == panoptic_stages
    result = snakemake(run, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule train_semantic_head" not in result.stdout + result.stderr
    results = run / "results" / "tiny"
    header = (results / "panoptic" / "losses.csv").read_text().splitlines()[0]
    assert header == "step,lr,loss,semantic,category,mask"
    scores = json.loads((results / "scores" / "predictions.json").read_text())["summary"]
    assert scores["images"] == 3
    report = (results / "report" / "report.html").read_text()
    assert "instance method" in report and "solov2" in report
    assert "Nothing to be done" in snakemake(run, config, "-n").stdout


def trained_weights(workdir: Path) -> dict:
    import torch

    return torch.load(workdir / "results" / "tiny" / "panoptic" / "model.pt", weights_only=True)["model"]


def test_new_pseudo_labels_retrain_the_panoptic_model_from_step_0(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    before = trained_weights(run)
    digest_before = json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"]
    config = copy.deepcopy(TINY)
    config["pseudo_labels"]["min_pixels"] = 9
    result = snakemake(run, config, "--until", "train_panoptic")  # what uses the model is not asserted here
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"] != digest_before
    log = (run / "logs/tiny/train_panoptic.log").read_text()
    assert "training from scratch (step 0)" in log and "resuming" not in log
    after = trained_weights(run)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_forcerun_trains_the_panoptic_model_from_step_0(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    before = trained_weights(run)
    result = snakemake(run, TINY, "--forcerun", "train_panoptic", "--until", "train_panoptic")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "logs/tiny/train_panoptic.log").read_text()
    assert "that run finished" in log and "training from scratch (step 0)" in log and "resuming" not in log
    after = trained_weights(run)
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)  # same data, seed: same model


def test_killed_panoptic_training_is_planned_again_and_resumes(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(TINY)
    config["panoptic"]["train"].update(steps=60, checkpoint_every=5, val_every=60)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "logs/tiny/train_panoptic.log").unlink()  # the finished run's; the new job writes its own
    proc = subprocess.Popen(
        snakemake_command(run, run / "config.yaml", "--cores", "2", "--until", "train_panoptic"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=run,
    )
    log = run / "logs/tiny/train_panoptic.log"
    deadline = time.time() + 300
    while time.time() < deadline and "checkpoint written" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    # the training process itself, not its DataLoader workers (forked: the same command line, one level below)
    training = {pid for pid, argv in descendants(proc.pid) if "train-panoptic" in argv and "python" in argv[0]}
    trainer = sorted(training - {child for pid in training for child, _ in descendants(pid)})
    assert len(trainer) == 1, "the training job was not found"
    os.kill(trainer[0], signal.SIGKILL)  # the real `spino train-panoptic`, killed as the OOM killer would
    assert proc.wait(timeout=120) != 0
    assert not (run / "results/tiny/panoptic/model.pt").exists()
    plan = planned_rules(snakemake(run, config, "-n"))
    assert "train_panoptic" in plan
    result = snakemake(run, config, "--until", "train_panoptic")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from checkpoint" in log.read_text()
    assert (run / "results/tiny/panoptic/model.pt").is_file()


def descendants(pid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process below ``pid`` (from /proc)."""
    parent, argv = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        child = int(stat.parent.name)
        parent[child], argv[child] = int(fields[1]), [a.decode() for a in cmdline if a]
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child, ppid in parent.items():
            if ppid == current:
                found.append((child, argv[child]))
                todo.append(child)
    return found
