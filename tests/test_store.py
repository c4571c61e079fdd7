"""Sharded label stores: parallel writers, killed writers, completeness, plain zarr access."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from spino.cli import main as spino
from spino.data import open_dataset
from spino.data.manifest import build_manifest, choose_annotated, write_manifest
from spino.store import IncompleteStoreError, LabelStore, create_store

from helpers import kill_during_store_write


def _gt_args(demo_root: Path) -> list[str]:
    return ["--dataset-kind", "demo", "--dataset-root", str(demo_root)]


@pytest.fixture()
def manifest(demo_root: Path, tmp_path: Path) -> Path:
    records = open_dataset("demo", demo_root).scan()
    path = tmp_path / "manifest.csv"
    write_manifest(path, build_manifest(records, choose_annotated(records, "train", k=3, seed=0)))
    return path


def _create(demo_root: Path, manifest: Path, out: Path, per_shard: int = 5) -> None:
    assert (
        spino(
            [
                "create-store",
                *_gt_args(demo_root),
                "--manifest",
                str(manifest),
                "--kind",
                "ground_truth",
                "--images-per-shard",
                str(per_shard),
                "--out",
                str(out),
            ]
        )
        == 0
    )


def test_store_written_by_separate_processes_equals_single_process(
    demo_root: Path, manifest: Path, tmp_path: Path
) -> None:
    _create(demo_root, manifest, tmp_path / "single.zarr")
    _create(demo_root, manifest, tmp_path / "multi.zarr")
    single = LabelStore(tmp_path / "single.zarr")
    for i in range(single.num_shards):
        assert (
            spino(
                [
                    "write-gt",
                    *_gt_args(demo_root),
                    "--manifest",
                    str(manifest),
                    "--store",
                    str(single.path),
                    "--shard",
                    str(i),
                ]
            )
            == 0
        )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spino",
                "write-gt",
                *_gt_args(demo_root),
                "--manifest",
                str(manifest),
                "--store",
                str(tmp_path / "multi.zarr"),
                "--shard",
                str(i),
            ]
        )
        for i in range(single.num_shards)
    ]
    assert [p.wait() for p in procs] == [0] * len(procs)
    for path in (single.path, tmp_path / "multi.zarr"):
        LabelStore(path).finalize()
    a, b = zarr.open(single.path, mode="r"), zarr.open(tmp_path / "multi.zarr", mode="r")
    assert single.num_shards == 3 and a["panoptic"].shape == (12, 96, 192)
    for name in ("semantic", "panoptic"):
        assert np.array_equal(a[name][:], b[name][:])
    assert (a["panoptic"][:] // 1000 == a["semantic"][:]).all()
    assert a.attrs["spino"]["complete"] and b.attrs["spino"]["complete"]
    # and what they hold is the dataset's own labels, each image in its own slot
    dataset = open_dataset("demo", demo_root)
    records = {r.image_id: r for r in dataset.scan()}
    assert sorted(single.image_ids) == sorted(records)
    for index, image_id in enumerate(single.image_ids):
        assert np.array_equal(a["panoptic"][index], dataset.read_panoptic(records[image_id])), image_id


def test_killed_writer_leaves_store_incomplete_and_rerun_fills_it(
    demo_root: Path, manifest: Path, tmp_path: Path, capsys
) -> None:
    _create(demo_root, manifest, tmp_path / "gt.zarr")
    store = LabelStore(tmp_path / "gt.zarr")
    for i in (0, 2):
        spino(
            [
                "write-gt",
                *_gt_args(demo_root),
                "--manifest",
                str(manifest),
                "--store",
                str(store.path),
                "--shard",
                str(i),
            ]
        )
    # the real `spino write-gt`, killed -9 after writing the semantic labels of shard 1, before panoptic and the done mark
    kill_during_store_write(
        [
            sys.executable,
            "-m",
            "spino",
            "write-gt",
            *_gt_args(demo_root),
            "--manifest",
            str(manifest),
            "--store",
            str(store.path),
            "--shard",
            "1",
            "--done",
            str(tmp_path / "1.json"),
        ],
        writes=1,
    )
    assert store.group["semantic"][5:10].min() < 255 and not (tmp_path / "1.json").exists()
    assert store.missing_shards() == [1]
    with pytest.raises(IncompleteStoreError, match=r"shards \[1\]"):
        store.finalize()
    assert spino(["gather", str(store.path)]) == 1
    assert "shards [1] of 3 are not written" in capsys.readouterr().err
    spino(["info", str(store.path)])
    info = json.loads(capsys.readouterr().out)
    assert info["missing_shards"] == [1] and info["complete"] is False

    spino(["write-gt", *_gt_args(demo_root), "--manifest", str(manifest), "--store", str(store.path), "--shard", "1"])
    assert spino(["gather", str(store.path)]) == 0
    reference = tmp_path / "ref.zarr"
    _create(demo_root, manifest, reference)
    for i in range(3):
        spino(
            [
                "write-gt",
                *_gt_args(demo_root),
                "--manifest",
                str(manifest),
                "--store",
                str(reference),
                "--shard",
                str(i),
            ]
        )
    assert np.array_equal(zarr.open(reference)["panoptic"][:], zarr.open(store.path)["panoptic"][:])
    assert LabelStore(store.path).complete


def test_write_shard_rejects_wrong_shapes_and_inconsistent_maps(tmp_path: Path) -> None:
    from spino.classes import DEMO

    store = create_store(tmp_path / "s.zarr", ["a", "b", "c"], 4, 5, DEMO, 2)
    with pytest.raises(ValueError, match="shape"):
        store.write_shard(0, np.zeros((1, 4, 5), np.uint8), np.zeros((1, 4, 5), np.uint32))
    with pytest.raises(ValueError, match="disagree"):
        store.write_shard(1, np.ones((1, 4, 5), np.uint8), np.zeros((1, 4, 5), np.uint32))
    assert store.missing_shards() == [0, 1]
    with pytest.raises(IncompleteStoreError):
        store.require_complete()


class CountedId(str):
    """An image id that counts how often it is compared (what a lookup of it costs)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_looking_up_every_image_of_a_store_costs_a_comparison_each(tmp_path: Path) -> None:
    """A sampler or an evaluation looks up each of a store's N images by id: N lookups, not N x N/2
    comparisons (which at Cityscapes' 2,975 train images is 4.4 million, at a drive's 30,000 frames
    450 million)."""
    from spino.classes import DEMO

    ids = [f"frame_{i:05d}" for i in range(2000)]
    store = create_store(tmp_path / "s.zarr", ids, 4, 4, DEMO, 16)
    store.image_ids = [CountedId(i) for i in store.image_ids]
    CountedId.comparisons = 0
    assert [store.index_of(CountedId(i)) for i in ids] == list(range(2000))
    assert CountedId.comparisons <= 2 * len(ids), CountedId.comparisons
    with pytest.raises(Exception, match="image 'nope' not in store"):
        store.index_of("nope")
