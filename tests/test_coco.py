"""`dataset.kind: coco`: COCO panoptic and COCO instances (polygons, RLE) read as a dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spino.cli import main as spino
from spino.data import open_dataset
from spino.encoding import instance_of, semantic_of
from spino.store import LabelStore


def coco_layout(export: Path, images: Path, root: Path, split: str = "train") -> Path:
    """``spino export --format coco`` output arranged as a coco dataset: annotations/panoptic_<split>.json,
    its PNGs beside it, the images under images/<split>/."""
    (root / "annotations").mkdir(parents=True)
    shutil.copy(export / "panoptic.json", root / "annotations" / f"panoptic_{split}.json")
    shutil.copytree(export / "panoptic", root / "annotations" / f"panoptic_{split}")
    shutil.copytree(images, root / "images" / split)
    return root


def test_coco_export_of_the_ground_truth_reads_back_and_scores_identically(
    gt_store: Path, demo_root: Path, tmp_path: Path
) -> None:
    assert spino(["export", str(gt_store), "--format", "coco", "--out", str(tmp_path / "export")]) == 0
    root = coco_layout(tmp_path / "export", demo_root / "images", tmp_path / "coco")
    args = ["--dataset-kind", "coco", "--dataset-root", str(root), "--splits", "train"]
    assert spino(["index", *args, "--k", "2", "--out", str(tmp_path / "m.csv")]) == 0
    assert (
        spino(
            [
                "create-store",
                *args,
                "--manifest",
                str(tmp_path / "m.csv"),
                "--kind",
                "ground_truth",
                "--images-per-shard",
                "16",
                "--out",
                str(tmp_path / "gt.zarr"),
            ]
        )
        == 0
    )
    assert (
        spino(
            [
                "write-gt",
                *args,
                "--manifest",
                str(tmp_path / "m.csv"),
                "--store",
                str(tmp_path / "gt.zarr"),
                "--shard",
                "0",
            ]
        )
        == 0
    )
    assert spino(["gather", str(tmp_path / "gt.zarr")]) == 0
    original, read_back = LabelStore(gt_store), LabelStore(tmp_path / "gt.zarr")
    assert (
        list(read_back.image_ids) == list(original.image_ids) and read_back.class_set.names == original.class_set.names
    )
    assert read_back.class_set.thing == original.class_set.thing
    for i, image_id in enumerate(original.image_ids):
        assert np.array_equal(read_back.panoptic(read_back.index_of(image_id)), original.panoptic(i)), image_id
    for gt, name in (
        (gt_store, "a"),
        (tmp_path / "gt.zarr", "b"),
    ):  # the demo's store scored against each: the same numbers
        assert (
            spino(
                [
                    "evaluate",
                    str(gt_store),
                    "--gt",
                    str(gt),
                    "--json",
                    str(tmp_path / f"{name}.json"),
                    "--csv",
                    str(tmp_path / f"{name}.csv"),
                ]
            )
            == 0
        )
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def _instances_file(path: Path, segmentations: list, size: tuple[int, int]) -> None:
    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": "a.png", "height": h, "width": w},
                    {"id": 2, "file_name": "b.png", "height": h, "width": w},
                ],
                "categories": [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}],
                "annotations": [
                    {
                        "id": k + 1,
                        "image_id": 1,
                        "category_id": cat,
                        "segmentation": seg,
                        "iscrowd": crowd,
                        "area": 0,
                        "bbox": [0, 0, 0, 0],
                    }
                    for k, (cat, seg, crowd) in enumerate(segmentations)
                ],  # image 2 has no annotation: unlabelled
            }
        )
    )


def test_polygons_and_rle_of_the_same_masks_give_the_same_labels(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools import mask as coco_mask

    h, w = 40, 60
    polygons = [
        (7, [[5, 5, 30, 5, 30, 25, 5, 25]], 0),  # car 1
        (7, [[35, 10, 55, 10, 55, 35, 35, 35]], 0),  # car 2
        (9, [[10, 12, 20, 12, 20, 38, 10, 38]], 0),  # a person on car 1 (smaller: painted over it)
        (9, [[40, 0, 59, 0, 59, 6, 40, 6]], 1),  # a crowd of persons
    ]

    def rle(segmentation):
        encoded = coco_mask.merge(coco_mask.frPyObjects(segmentation, h, w))
        return {"size": encoded["size"], "counts": encoded["counts"].decode()}

    as_rle = [(cat, rle(seg), crowd) for cat, seg, crowd in polygons]
    maps = {}
    for name, segmentations in (("polygons", polygons), ("rle", as_rle)):
        root = tmp_path / name
        _instances_file(root / "annotations" / "instances_train.json", segmentations, (h, w))
        (root / "images" / "train").mkdir(parents=True)
        for image in ("a.png", "b.png", "c.png"):  # c.png is in no JSON: unlabelled too
            Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / "train" / image)
        dataset = open_dataset("coco", root, ["train"], things=["car", "person"])
        records = dataset.scan()
        assert [(r.image_id, r.has_gt) for r in records] == [("a", True), ("b", False), ("c", False)]
        dataset.check_sizes(records)
        maps[name] = dataset.read_panoptic(records[0])
    assert np.array_equal(maps["polygons"], maps["rle"])
    pan = maps["polygons"]
    semantic, instance = semantic_of(pan), instance_of(pan)
    assert dataset.class_set.names == ("car", "person") and dataset.class_set.thing == (True, True)
    assert semantic[15, 15] == 1 and instance[15, 15] == 1  # the person, over the car
    assert semantic[8, 25] == 0 and instance[8, 25] == 1 and semantic[20, 45] == 0 and instance[20, 45] == 2
    assert semantic[3, 50] == 1 and instance[3, 50] == 0  # crowd: the class without an instance
    assert semantic[0, 0] == 255  # covered by no annotation: void


def _instances_dataset(root: Path, segmentations: list, size: tuple[int, int] = (40, 60)) -> Path:
    _instances_file(root / "annotations" / "instances_train.json", segmentations, size)
    (root / "images" / "train").mkdir(parents=True)
    for image in ("a.png", "b.png"):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(root / "images" / "train" / image)
    return root


def _index(root: Path, tmp_path: Path, *extra: str) -> int:
    args = ["--dataset-kind", "coco", "--dataset-root", str(root), "--splits", "train", *extra]
    return spino(["index", *args, "--k", "1", "--out", str(tmp_path / "m.csv")])


def test_categories_without_isthing_are_named_until_dataset_things_decides(tmp_path: Path, capsys) -> None:
    """No guess: an instances file's categories lack isthing, so the index names them and asks for
    dataset.things; with it, the named ones are things and the others stuff."""
    root = _instances_dataset(tmp_path / "coco", [(7, [[5, 5, 30, 5, 30, 25, 5, 25]], 0)])
    assert _index(root, tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "instances_train.json: categories without isthing: car, person; set dataset.things" in err
    assert _index(root, tmp_path, "--things", "car") == 0
    dataset = open_dataset("coco", root, ["train"], things=["car"])
    assert dataset.class_set.thing == (True, False)
    assert _index(root, tmp_path, "--things", "bus") == 1
    assert "dataset.things: ['bus'] are not categories of" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ([[5, 5, 30, 5]], "annotation 1 (image 1): polygon of 4 coordinates (a polygon needs at least 3 x, y points)"),
        ([], "annotation 1 (image 1): polygon of 0 coordinates"),
        ({"counts": "x"}, "annotation 1 (image 1): segmentation is neither polygons nor RLE"),
        ({"size": [40, 60], "counts": [1, 2, "a"]}, "annotation 1 (image 1): cannot decode its segmentation"),
    ],
)
def test_a_malformed_segmentation_stops_the_index_naming_file_and_annotation(
    segmentation, message: str, tmp_path: Path, capsys
) -> None:
    """A 2-point polygon used to pass the index and crash the boundary head's training with a
    pycocotools TypeError naming neither file nor annotation."""
    root = _instances_dataset(tmp_path / "coco", [(7, segmentation, 0)])
    assert _index(root, tmp_path, "--things", "car", "person") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "instances_train.json: " + message in err, err


def test_annotations_of_images_the_file_does_not_list_are_named(tmp_path: Path, capsys) -> None:
    root = _instances_dataset(tmp_path / "coco", [(7, [[5, 5, 30, 5, 30, 25, 5, 25]], 0)])
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["images"] = []  # a labelling tool's export cut short
    path.write_text(json.dumps(data))
    assert _index(root, tmp_path, "--things", "car") == 1
    err = capsys.readouterr().err.strip()
    assert "instances_train.json: annotations of images the file does not list (image ids [1]" in err
    assert "annotation 1" in err and len(err.splitlines()) == 1


def test_a_truncated_image_stops_the_index(tmp_path: Path, capsys) -> None:
    """Its header reads; only decoding it whole finds the cut, at the index, not after the heads trained."""
    root = _instances_dataset(tmp_path / "coco", [(7, [[5, 5, 30, 5, 30, 25, 5, 25]], 0)])
    jpeg = root / "images" / "train" / "b.png"  # a JPEG under a .png name, as exports sometimes have
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:-600])
    assert _index(root, tmp_path, "--things", "car") == 1
    err = capsys.readouterr().err.strip()
    assert f"{jpeg}: cannot decode image" in err and len(err.splitlines()) == 1, err


def test_panoptic_categories_without_isthing_are_named_too(
    gt_store: Path, demo_root: Path, tmp_path: Path, capsys
) -> None:
    """A panoptic category without isthing used to become stuff silently (a car class included)."""
    assert spino(["export", str(gt_store), "--format", "coco", "--out", str(tmp_path / "export")]) == 0
    root = coco_layout(tmp_path / "export", demo_root / "images", tmp_path / "coco")
    path = root / "annotations" / "panoptic_train.json"
    data = json.loads(path.read_text())
    for category in data["categories"]:
        if category["name"] == "car":
            del category["isthing"]
    path.write_text(json.dumps(data))
    assert _index(root, tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "set dataset.things to the names of the countable ones (e.g. things: [car, person]), the "
        "others are stuff (spino init writes this choice for you to confirm)"
    )
    assert "panoptic_train.json: categories without isthing: car;" in err and len(err.splitlines()) == 1
