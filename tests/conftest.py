"""Shared fixtures: the synthetic demo dataset, and the real Cityscapes samples when ../shared has them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spino.data.synthetic import DemoSpec, write_demo

from helpers import EXACT8, REPO, TINY


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo(root, DemoSpec(n_train=8, n_val=4, height=96, width=192, seed=3))
    return root


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The tiny run under profiles/default (as from the checkout's root), its Snakemake log kept: one
    run for the whole session (the workflow tests work on copies where they change it; the SLURM test
    compares its cluster run with it). On the CPU, as the workflow tests' exact checks need."""
    from helpers import snakemake

    workdir = tmp_path_factory.mktemp("wf")
    result = snakemake(workdir, TINY, "--workflow-profile", str(REPO / "profiles" / "default"))
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def exact8() -> Path:
    if not (EXACT8 / "gtFine").is_dir():
        pytest.skip(f"{EXACT8} not present (real Cityscapes samples live outside the repository)")
    return EXACT8


@pytest.fixture(scope="session")
def gt_store(demo_root: Path, tmp_path_factory) -> Path:
    """A complete ground-truth store of the demo images (3 shards of 5), written by the real subcommands."""
    from spino.cli import main as spino

    out = tmp_path_factory.mktemp("gt")
    args = ["--dataset-kind", "demo", "--dataset-root", str(demo_root)]
    assert spino(["index", *args, "--k", "2", "--out", str(out / "m.csv")]) == 0
    assert (
        spino(
            [
                "create-store",
                *args,
                "--manifest",
                str(out / "m.csv"),
                "--kind",
                "ground_truth",
                "--images-per-shard",
                "5",
                "--out",
                str(out / "gt.zarr"),
            ]
        )
        == 0
    )
    for shard in range(3):
        assert (
            spino(
                [
                    "write-gt",
                    *args,
                    "--manifest",
                    str(out / "m.csv"),
                    "--store",
                    str(out / "gt.zarr"),
                    "--shard",
                    str(shard),
                ]
            )
            == 0
        )
    assert spino(["gather", str(out / "gt.zarr"), "--out", str(out / "done.json")]) == 0
    return out / "gt.zarr"


@pytest.fixture(scope="module")
def on_the_cpu():
    """The workflow tests run on the CPU on any machine (their modules use this fixture): their
    exact-weights and fingerprint checks hold on the CPU only (on a GPU, tests/test_panoptic.py and
    benchmarks/gpu_check.sh run the GPU paths)."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    yield
    if before is None:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = before
