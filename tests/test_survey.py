"""`spino init`'s survey: each layout recognised by its files, with its splits, classes and sizes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spino.cli import main as spino
from spino.data import open_dataset
from spino.data.survey import detect_layout, survey


def test_a_folder_dataset_is_recognised_with_its_split_lists(demo_root: Path) -> None:
    found = survey(demo_root)
    assert (found.kind, found.splits) == ("folder", ["train", "val"])
    assert found.things == ["person", "car"] and not found.things_proposed  # classes.yaml says
    assert dict(found.labelled) == {"train": 8, "val": 4} and found.sizes == {(96, 192): 12}


def test_cityscapes_is_recognised(exact8: Path) -> None:
    found = survey(exact8)
    assert found.kind == "cityscapes" and found.splits == ["train"]
    assert found.labelled["train"] == 8 and set(found.sizes) == {(1024, 2048)}


def test_label_studio_result_json_with_images_beside_it(demo_root: Path, tmp_path: Path) -> None:
    """Label Studio's COCO export: result.json at the top, file names "images/<name>" relative to it."""
    root = tmp_path / "ls"
    (root / "images").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "images" / name)
    (root / "result.json").write_text(
        json.dumps(
            {
                "images": [{"id": 0, "file_name": "images/a.png", "height": 40, "width": 60}],
                "categories": [{"id": 0, "name": "Car"}, {"id": 1, "name": "Road"}],
                "annotations": [
                    {"id": 0, "image_id": 0, "category_id": 0, "segmentation": [[5, 5, 30, 5, 30, 25, 5, 25]]}
                ],
            }
        )
    )
    assert detect_layout(root) == ("coco", ["result"])
    found = survey(root)
    assert found.things == ["Car"] and found.things_proposed  # "Car" is a usual thing, "Road" is not
    assert dict(found.labelled) == {"result": 1} and dict(found.unlabelled) == {"result": 2}
    records = open_dataset("coco", root, ["result"], things=["Car"]).scan()
    assert [(Path(r.image).name, r.has_gt) for r in records] == [("a.png", True), ("b.png", False), ("c.png", False)]


def test_roboflow_splits_are_its_folders(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split in ("train", "valid"):
        (root / split).mkdir(parents=True)
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / split / "x.jpg")
        (root / split / "_annotations.coco.json").write_text(
            json.dumps({"images": [], "categories": [{"id": 0, "name": "person"}], "annotations": []})
        )
    assert detect_layout(root) == ("coco", ["train", "valid"])


def test_init_refuses_a_folder_it_does_not_recognise_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "photos").mkdir()
    assert spino(["init", str(tmp_path / "photos"), "--out", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no dataset layout recognised" in err and "docs/your-data.md" in err
    assert not (tmp_path / "c.yaml").exists()


def test_init_writes_a_config_that_checks_and_refuses_to_overwrite(demo_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.yaml"
    assert spino(["init", str(demo_root), "--profile", "paper", "--run", "mine", "--out", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    assert config["gpus"] == {"heads": 1, "pseudo_label": 1, "panoptic": 1, "predict": 1}
    assert config["annotation"] == {"split": "train", "k": 8} and "backbone" not in config  # the paper's
    shutil.copy(out, tmp_path / "before.yaml")
    assert spino(["init", str(demo_root), "--out", str(out)]) == 1
    assert "exists; choose another --out or pass --force" in capsys.readouterr().err
    assert out.read_text() == (tmp_path / "before.yaml").read_text()


@pytest.mark.parametrize("labelled", [10, 12])
def test_init_says_when_every_labelled_image_is_annotated(demo_root: Path, tmp_path: Path, labelled: int) -> None:
    from helpers import cvat_export

    cvat_export(demo_root, tmp_path / "cvat", labelled=labelled, resized=0, size=(1, 1))
    assert spino(["init", str(tmp_path / "cvat"), "--out", str(tmp_path / "c.yaml")]) == 0
    text = (tmp_path / "c.yaml").read_text()
    assert ("Every labelled image is annotated" in text) == (labelled <= 10)
