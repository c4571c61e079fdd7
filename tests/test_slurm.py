"""The workflow through profiles/slurm on a real single-node SLURM (tests/slurm/cluster.sh).

Skips where SLURM cannot be started (not root, no apt-get). Light rules run locally; every other
rule must run as a SLURM job, the panoptic training with a GPU, and the results must equal a
local `--cores` run. A training job cancelled with scancel leaves nothing Snakemake trusts, and a
rerun finishes the workflow.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from helpers import REPO, TINY, snakemake_command, snakemake_env

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
REMOTE_RULES = {
    "group_ground_truth_write_ground_truth_shard",  # profiles/slurm: the shards a few to a job
    "train_semantic_head",
    "train_boundary_head",
    "pseudo_label",
    "train_panoptic",
    "predict",
}
# The test override of profiles/slurm: this node has 2 CPUs, 8 GB and one (fake) GPU; GPUs come from
# TINY's `gpus`. Each job gets the threads its rule gets in the shared local run (finished_run:
# profiles/default, --cores 2), which the cluster run must equal: PyTorch's float reductions depend
# on the thread count.
SMALL = {
    "train_semantic_head": {"cpus_per_task": 2, "mem_mb": 1500, "runtime": 10},
    "train_boundary_head": {"cpus_per_task": 2, "mem_mb": 1500, "runtime": 10},
    "pseudo_label": {"cpus_per_task": 1, "mem_mb": 1500, "runtime": 10},
    "train_panoptic": {"cpus_per_task": 2, "mem_mb": 1500, "runtime": 10},
    "predict": {"cpus_per_task": 1, "mem_mb": 1500, "runtime": 10},
    "write_ground_truth_shard": {"cpus_per_task": 1, "mem_mb": 1000, "runtime": 10},
}


@pytest.fixture(scope="module")
def slurm():
    if os.environ.get("SPINO_TEST_SLURM") != "1":
        pytest.skip(
            "SLURM tests are opt-in: set SPINO_TEST_SLURM=1 (as .ci/run does) to install slurm-wlm and munge and "
            "start a test SLURM on localhost; a SLURM already configured here is never touched"
        )
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.skip(
            f"SLURM could not be started here: {started.stderr.strip().splitlines()[-1] if started.stderr.strip() else started.returncode}"
        )
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=120)


def run(workdir: Path, config: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = snakemake_command(workdir, workdir / "config.yaml", *args)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=snakemake_env(), cwd=workdir
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # lets Snakemake cancel its SLURM jobs
        out, _ = proc.communicate(timeout=120)
        pytest.fail(f"snakemake did not finish in {timeout} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def slurm_args() -> list[str]:
    resources = [f"{rule}:{key}={value}" for rule, values in SMALL.items() for key, value in values.items()]
    return [
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--default-resources",
        "slurm_partition=debug",
        "runtime=10",
        "mem_mb=1000",
        "cpus_per_task=1",
        "--set-resources",
        *resources,
        "--set-threads",
        *[f"{rule}={values['cpus_per_task']}" for rule, values in SMALL.items()],
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--jobs",
        "4",
        "--latency-wait",
        "10",
        "--retries",
        "0",
        "--group-components",  # the profile packs 8 ground-truth shards in a job; this node has 2 CPUs
        "ground_truth=2",
    ]


def submitted_jobs(output: str) -> dict[str, list[str]]:
    """Rule -> SLURM job ids, from the log folder Snakemake names with each submission: rule_<rule>, or
    group_<group>_<its rules> for a group job."""
    jobs: dict[str, list[str]] = {}
    for slurm_id, folder in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/([^/]+)/", output):
        jobs.setdefault(folder.removeprefix("rule_"), []).append(slurm_id)
    return jobs


def test_workflow_on_slurm_equals_local_run(slurm, tmp_path: Path, capsys, request) -> None:
    # asked for here, not as a parameter: pytest sets session fixtures up before module ones, so the
    # tiny run would be built before `slurm` skips where SLURM is not opted in
    finished_run = request.getfixturevalue("finished_run")
    (tmp_path / "cluster").mkdir()
    remote = run(tmp_path / "cluster", TINY, *slurm_args())
    assert remote.returncode == 0, remote.stdout[-5000:]
    jobs = submitted_jobs(remote.stdout)
    with capsys.disabled():  # into the CI log, whatever pytest captures
        print(f"\nSLURM job ids by rule: {json.dumps(jobs)}")
    assert set(jobs) == REMOTE_RULES, jobs
    assert len(jobs["pseudo_label"]) == 3 and len(jobs["train_panoptic"]) == 1
    assert len(jobs["group_ground_truth_write_ground_truth_shard"]) == 2  # 3 shards, 2 to a job here
    panoptic_log = (tmp_path / "cluster" / "logs" / "tiny" / "train_panoptic.log").read_text()
    assert f"SLURM job {jobs['train_panoptic'][0]}" in panoptic_log and "GPUs granted: 0" in panoptic_log
    logs = list((tmp_path / "cluster" / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in logs} >= {i for ids in jobs.values() for i in ids}

    for name in ("pseudo_labels", "predictions"):
        a, b = (
            zarr.open(finished_run / "results" / "tiny" / f"{name}.zarr", mode="r"),
            zarr.open(tmp_path / "cluster" / "results" / "tiny" / f"{name}.zarr", mode="r"),
        )
        for array in ("semantic", "panoptic"):
            assert np.array_equal(a[array][:], b[array][:]), (name, array)
    for name in ("pseudo_labels", "predictions"):
        left = json.loads((finished_run / "results" / "tiny" / "scores" / f"{name}.json").read_text())
        right = json.loads((tmp_path / "cluster" / "results" / "tiny" / "scores" / f"{name}.json").read_text())
        assert left["stats"] == right["stats"], name


def test_cancelled_training_job_is_not_trusted_and_rerun_finishes(slurm, tmp_path: Path) -> None:
    config = copy.deepcopy(TINY)
    config["panoptic"]["train"]["steps"] = 150  # long enough to be cancelled midway
    config["panoptic"]["train"]["checkpoint_every"] = 5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = snakemake_command(tmp_path, tmp_path / "config.yaml", *slurm_args())
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=snakemake_env(), cwd=tmp_path
    )
    checkpoint = tmp_path / "results" / "tiny" / "panoptic" / "checkpoints" / "last.pt"
    deadline = time.time() + 600
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    queue = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout
    training = [line.split()[0] for line in queue.splitlines() if "rule_train_panoptic" in line]
    assert training, f"no running training job to cancel: {queue}"
    subprocess.run(["scancel", training[0]], check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:]
    assert not (tmp_path / "results" / "tiny" / "panoptic" / "model.pt").exists()

    rerun = run(tmp_path, config, *slurm_args())
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "resuming from checkpoint" in (tmp_path / "logs" / "tiny" / "train_panoptic.log").read_text()
    assert (tmp_path / "results" / "tiny" / "report" / "report.html").is_file()
