"""Datasets, manifest and bad input: every error names the file and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from spino.cli import main as spino
from spino.data import open_dataset
from spino.data.cityscapes import Cityscapes
from spino.data.io import read_label, write_png
from spino.data.manifest import build_manifest, choose_annotated, read_manifest, write_manifest
from spino.data.synthetic import DemoSpec, write_demo
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, instance_of, semantic_of


@pytest.fixture()
def demo_copy(demo_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_root, tmp_path / "demo"))


def test_demo_is_deterministic_and_has_touching_instances(tmp_path: Path) -> None:
    spec = DemoSpec(n_train=3, n_val=1, height=64, width=128, seed=7)
    write_demo(tmp_path / "a", spec)
    write_demo(tmp_path / "b", spec, workers=2)  # rendered in two processes: the same files
    for sub in ("images", "semantic", "instances", "splits"):
        names = sorted(f.name for f in (tmp_path / "a" / sub).iterdir())
        assert names == sorted(f.name for f in (tmp_path / "b" / sub).iterdir()) and names
        for name in names:
            assert (tmp_path / "a" / sub / name).read_bytes() == (tmp_path / "b" / sub / name).read_bytes()
    ds = open_dataset("demo", tmp_path / "a")
    touching = 0
    for record in ds.scan():
        pan = ds.read_panoptic(record)
        assert set(np.unique(semantic_of(pan))) >= {0, 2, 4}  # road, building, sky in every scene
        inst = np.where(instance_of(pan) > 0, pan, 0).astype(np.int64)
        a, b = inst[:, :-1], inst[:, 1:]
        touching += int(np.any((a > 0) & (b > 0) & (a != b) & (a // LABEL_DIVISOR == b // LABEL_DIVISOR)))
    assert touching >= 2


def test_folder_dataset_renumbers_instances_per_class(demo_root: Path) -> None:
    ds = open_dataset("folder", demo_root)
    record = ds.scan()[0]
    pan = ds.read_panoptic(record)
    raw = read_label(record.instance)
    for cls in ds.class_set.thing_ids:
        insts = np.unique(instance_of(pan)[semantic_of(pan) == cls])
        assert list(insts) == list(range(1, len(insts) + 1))
    assert (instance_of(pan) > 0).sum() == (raw > 0).sum()


def test_cityscapes_classes_from_instance_ids_equal_label_ids(exact8: Path) -> None:
    ds = Cityscapes(exact8, ["train"])
    lut, _ = ds.class_set.label_to_train()
    for record in ds.scan()[:3]:
        pan = ds.read_panoptic(record)
        assert np.array_equal(semantic_of(pan), lut[read_label(record.semantic)])
        assert (pan == IGNORE_PANOPTIC).any() and (instance_of(pan) > 0).any()


def test_annotated_choice_is_deterministic() -> None:
    from spino.data.base import Record

    records = [Record(f"img_{i:04d}", "train", f"{i}.png", f"{i}_l.png") for i in range(3000)][::-1]
    paper = [12, 324, 450, 608, 742, 768, 798, 836, 1300, 2892]
    assert choose_annotated(records, "train", indices=paper) == [f"img_{i:04d}" for i in paper]
    assert choose_annotated(records, "train", k=10, seed=3) == choose_annotated(records, "train", k=10, seed=3)
    assert choose_annotated(records, "train", k=10, seed=3) != choose_annotated(records, "train", k=10, seed=4)
    with pytest.raises(ValueError, match="out of range"):
        choose_annotated(records, "train", indices=[3000])


def test_manifest_round_trip(demo_root: Path, tmp_path: Path) -> None:
    records = open_dataset("demo", demo_root).scan()
    entries = build_manifest(records, choose_annotated(records, "train", k=2))
    write_manifest(tmp_path / "m.csv", entries)
    assert read_manifest(tmp_path / "m.csv") == entries
    assert sum(e.annotated for e in entries) == 2


def _index_and_write(root: Path, tmp_path: Path) -> int:
    args = ["--dataset-kind", "demo", "--dataset-root", str(root)]
    if spino(["index", *args, "--k", "2", "--out", str(tmp_path / "m.csv")]):
        return 1
    if spino(
        [
            "create-store",
            *args,
            "--manifest",
            str(tmp_path / "m.csv"),
            "--kind",
            "ground_truth",
            "--images-per-shard",
            "20",
            "--out",
            str(tmp_path / "gt.zarr"),
        ]
    ):
        return 1
    return spino(
        ["write-gt", *args, "--manifest", str(tmp_path / "m.csv"), "--store", str(tmp_path / "gt.zarr"), "--shard", "0"]
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_image", "images/demo_0003.png: file not found"),
        ("unknown_class", "semantic/demo_0003.png: class ids [42] are not in class set 'demo'"),
        ("size_mismatch", "instances/demo_0003.png: size 192x96 differs from"),
        ("corrupt_png", "semantic/demo_0003.png: cannot decode image"),
        ("missing_split_id", "splits/train.txt:1: image 'nope' not found"),
    ],
)
def test_bad_input_names_the_file_and_the_problem(
    demo_copy: Path, tmp_path: Path, capsys, damage: str, message: str
) -> None:
    target = demo_copy / "semantic" / "demo_0003.png"
    if damage == "missing_image":
        spino(
            [
                "index",
                "--dataset-kind",
                "demo",
                "--dataset-root",
                str(demo_copy),
                "--k",
                "2",
                "--out",
                str(tmp_path / "m.csv"),
            ]
        )
        (demo_copy / "images" / "demo_0003.png").unlink()
        rc = spino(
            [
                "create-store",
                "--dataset-kind",
                "demo",
                "--dataset-root",
                str(demo_copy),
                "--manifest",
                str(tmp_path / "m.csv"),
                "--kind",
                "ground_truth",
                "--images-per-shard",
                "20",
                "--out",
                str(tmp_path / "gt.zarr"),
            ]
        )
        if rc == 0:
            rc = spino(
                [
                    "write-gt",
                    "--dataset-kind",
                    "demo",
                    "--dataset-root",
                    str(demo_copy),
                    "--manifest",
                    str(tmp_path / "m.csv"),
                    "--store",
                    str(tmp_path / "gt.zarr"),
                    "--shard",
                    "0",
                ]
            )
    else:
        if damage == "unknown_class":
            sem = read_label(target).copy()
            sem[0, 0] = 42
            write_png(target, sem)
        elif damage == "size_mismatch":
            write_png(target, np.zeros((10, 20), np.uint8))
        elif damage == "corrupt_png":
            target.write_bytes(target.read_bytes()[:60])
        elif damage == "missing_split_id":
            (demo_copy / "splits" / "train.txt").write_text("nope\n")
        rc = _index_and_write(demo_copy, tmp_path)
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err, err


def test_label_free_index_needs_no_labels_in_the_annotation_split(demo_copy: Path, tmp_path: Path, capsys) -> None:
    """k: 0 (labelgen: primaps) annotates nothing, so its split may be unlabelled; k > 0 may not."""
    for f in (demo_copy / "splits" / "train.txt").read_text().split():
        (demo_copy / "semantic" / f"{f}.png").unlink()
        (demo_copy / "instances" / f"{f}.png").unlink()
    args = [
        "index",
        "--dataset-kind",
        "demo",
        "--dataset-root",
        str(demo_copy),
        "--need-labels",
        "val",
        "--out",
        str(tmp_path / "m.csv"),
    ]
    assert spino([*args, "--k", "0"]) == 0
    assert sum(e.has_gt for e in read_manifest(tmp_path / "m.csv")) == len(
        (demo_copy / "splits" / "val.txt").read_text().split()
    )
    assert spino([*args, "--k", "2"]) == 1
    assert "no image of split 'train' has ground truth to annotate from" in capsys.readouterr().err


def test_unknown_class_set_and_dataset_kind_are_reported(tmp_path: Path, capsys) -> None:
    assert (
        spino(
            [
                "index",
                "--dataset-kind",
                "kitti",
                "--dataset-root",
                str(tmp_path),
                "--k",
                "1",
                "--out",
                str(tmp_path / "m.csv"),
            ]
        )
        == 1
    )
    assert "unknown dataset kind 'kitti'" in capsys.readouterr().err
    assert (
        spino(
            [
                "index",
                "--dataset-kind",
                "folder",
                "--dataset-root",
                str(tmp_path),
                "--classes",
                "nope.yaml",
                "--k",
                "1",
                "--out",
                str(tmp_path / "m.csv"),
            ]
        )
        == 1
    )
    assert "class set 'nope.yaml'" in capsys.readouterr().err


def write_kitti360(root: Path) -> dict[str, np.ndarray]:
    """A two-frame KITTI-360 tree (train and val lists) in its 2D layout; returns the label ids per frame."""
    sequence = "2013_05_28_drive_0000_sync"
    frames = {}
    for split, frame in (("train", "0000000250"), ("val", "0000000251")):
        labels = np.full((40, 64), 7, np.uint8)  # road
        instances = labels.astype(np.uint16) * LABEL_DIVISOR
        for label_id, instance, (y, x) in ((26, 1, (2, 2)), (32, 5, (2, 20)), (33, 5, (2, 40)), (24, 0, (20, 2))):
            labels[y : y + 10, x : x + 12] = label_id  # car 1, motorcycle 5, bicycle 5, a person without instance
            instances[y : y + 10, x : x + 12] = label_id * LABEL_DIVISOR + instance
        labels[30:, 40:] = 11  # building
        instances[30:, 40:] = 11 * LABEL_DIVISOR
        labels[35:, :4] = 0  # unlabelled
        image = f"data_2d_raw/{sequence}/image_00/data_rect/{frame}.png"
        semantic = f"data_2d_semantics/train/{sequence}/image_00/semantic/{frame}.png"
        write_png(root / image, np.full((40, 64, 3), 90, np.uint8))
        write_png(root / semantic, labels)
        write_png(root / semantic.replace("/semantic/", "/instance/"), instances)
        (root / f"data_2d_semantics/train/2013_05_28_drive_{split}_frames.txt").write_text(f"{image} {semantic}\n")
        frames[f"{sequence}_{frame}"] = labels
    return frames


def test_kitti360_layout_merges_two_wheelers_and_keeps_their_instances_apart(tmp_path: Path) -> None:
    from spino.classes import KITTI360_14

    frames = write_kitti360(tmp_path)
    ds = open_dataset("kitti360", tmp_path)
    records = ds.scan()
    assert [(r.image_id, r.split) for r in records] == [(i, s) for i, s in zip(frames, ["train", "val"])]
    pan = ds.read_panoptic(records[0])
    names = KITTI360_14.names
    semantic, instance = semantic_of(pan), instance_of(pan)
    two_wheeler, car, person = names.index("two-wheeler"), names.index("car"), names.index("person")
    assert (semantic[2:12, 20:32] == two_wheeler).all() and (
        semantic[2:12, 40:52] == two_wheeler
    ).all()  # motorcycle joins
    assert (
        instance[5, 25] != instance[5, 45] and instance[5, 25] > 0 and instance[5, 45] > 0
    )  # both numbered 5, kept apart
    assert (semantic[2:12, 2:14] == car).all() and instance[5, 5] == 1
    assert (semantic[20:30, 2:14] == person).all() and (instance[20:30, 2:14] == 0).all()  # no instance: crowd
    assert (pan[35:, :4] == IGNORE_PANOPTIC).all() and (semantic[30:35, 40:] == names.index("building")).all()
    assert KITTI360_14.label_to_train()[0][32] == two_wheeler  # it used to be ignored
    assert KITTI360_14.to_dict()["classes"][two_wheeler]["label_id"] == [33, 32]


def test_kitti360_index_and_ground_truth_through_the_cli(tmp_path: Path, capsys) -> None:
    root = tmp_path / "kitti"
    write_kitti360(root)
    args = ["--dataset-kind", "kitti360", "--dataset-root", str(root)]
    assert spino(["index", *args, "--k", "1", "--out", str(tmp_path / "m.csv")]) == 0
    entries = read_manifest(tmp_path / "m.csv")
    assert [e.split for e in entries] == ["train", "val"] and entries[0].annotated
    (root / "data_2d_semantics/train/2013_05_28_drive_val_frames.txt").write_text("only-one-column\n")
    assert spino(["index", *args, "--k", "1", "--out", str(tmp_path / "m2.csv")]) == 1
    assert "2013_05_28_drive_val_frames.txt:1: expected '<image> <semantic label>'" in capsys.readouterr().err
