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
from spino.errors import InputError


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


# COCO-panoptic's 80 thing categories (panoptic_coco_categories.json, isthing 1), as a labelling tool
# names them.
COCO_PANOPTIC_THINGS = """person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant
stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella
handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard
tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot
hot_dog pizza donut cake chair couch potted_plant bed dining_table tv laptop mouse remote keyboard
cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier
toothbrush""".split()


def test_proposed_things_follow_cityscapes_and_coco_panoptic() -> None:
    """Cityscapes' 19 classes are proposed as Cityscapes counts them (traffic light: stuff), and every
    COCO-panoptic thing but traffic light (where the two disagree, the street's convention)."""
    from spino.classes import CITYSCAPES_19
    from spino.data.survey import USUAL_THINGS, _normalised

    proposed = [_normalised(name) in USUAL_THINGS for name in CITYSCAPES_19.names]
    assert proposed == list(CITYSCAPES_19.thing)
    for name in COCO_PANOPTIC_THINGS:
        assert (_normalised(name.replace("_", " ")) in USUAL_THINGS) == (name != "traffic_light"), name


def test_init_on_a_truncated_label_studio_export_names_the_json_error(demo_root: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "ls"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "images" / "a.png")
    (root / "result.json").write_text('{"images": [{"id": 0, "file_name": "images/a.png", "hei')
    assert spino(["init", str(root), "--out", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"spino init: error: {root / 'result.json'}: not valid JSON (Unterminated string starting at: line 1 column"
        " 52 (char 51)); a truncated or unfinished export?"
    ]


def test_init_on_a_folder_with_an_export_and_a_raw_folder_takes_both(tmp_path: Path, capsys) -> None:
    """The export holds only the labelled images; the robot's other frames sit beside it. Frames the
    export has too (the same bytes under Label Studio's new name) are taken once."""
    root = tmp_path / "robot"
    (root / "export" / "images").mkdir(parents=True)
    (root / "raw" / "day2").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("label more")
    rng = np.random.default_rng(0)
    for name in ("f1", "f2", "f3", "f4"):
        folder = root / "raw" / ("day2" if name == "f4" else "")
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    shutil.copy(root / "raw" / "f1.png", root / "export" / "images" / "0a1b2c3d-f1.png")
    (root / "export" / "result.json").write_text(
        json.dumps(
            {
                "images": [{"id": 0, "file_name": "images/0a1b2c3d-f1.png", "height": 40, "width": 60}],
                "categories": [{"id": 0, "name": "car"}, {"id": 1, "name": "road"}],
                "annotations": [
                    {"id": 0, "image_id": 0, "category_id": 0, "segmentation": [[5, 5, 30, 5, 30, 25, 5, 25]]}
                ],
            }
        )
    )
    found = survey(root)
    assert found.root == root / "export" and found.unlabelled_folders == [str(root / "raw")]
    assert dict(found.labelled) == {"result": 1} and dict(found.unlabelled) == {"result": 3}
    assert found.added == (
        f"dataset.unlabelled: 3 images added to split 'result' unlabelled; 1 found again and taken once: "
        f"{root / 'raw' / 'f1.png'} (= {root / 'export' / 'images' / '0a1b2c3d-f1.png'})"
    )
    assert spino(["init", str(root), "--out", str(tmp_path / "c.yaml")]) == 0
    config = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert config["run"] == "robot"  # the folder the user named, not the export inside it
    assert config["dataset"]["root"] == str(root / "export")
    assert config["dataset"]["unlabelled"] == [str(root / "raw")]
    (root / "second").mkdir()
    shutil.copytree(root / "export", root / "second" / "export")
    shutil.move(str(root / "second" / "export"), str(root / "export2"))
    with pytest.raises(InputError, match=r"several datasets in it \(export, export2\): run spino init on one"):
        survey(root)


def test_two_images_of_one_name_are_named_by_both_paths(tmp_path: Path) -> None:
    from spino.data.base import Record
    from spino.data.manifest import build_manifest

    one = [Record("frame_0001", "result", "a/frame_0001.jpg"), Record("frame_0001", "result", "b/frame_0001.jpg")]
    with pytest.raises(InputError) as err:
        build_manifest(one, [])
    assert str(err.value) == (
        "b/frame_0001.jpg: image id 'frame_0001' (its file name) is already that of a/frame_0001.jpg (split"
        " 'result'); rename one of the two files"
    )
    two = [Record("x", "train", "train/x.png"), Record("x", "val", "val/x.png")]
    with pytest.raises(InputError, match=r"val/x.png: .* of train/x.png \(splits 'train' and 'val'\)"):
        build_manifest(two, [])


def test_annotated_images_are_named_by_id_file_name_or_uploaded_name() -> None:
    """Label Studio renames an upload "frame_0001.jpg" to "8f3a2c1d-frame_0001.jpg": the user names it
    as they know it."""
    from spino.data.base import Record
    from spino.data.manifest import choose_annotated

    records = [
        Record(f"{n:08x}-frame_{n:04d}", "result", f"x/images/{n:08x}-frame_{n:04d}.jpg", "r.json", f"r.json#{n}")
        for n in range(12)
    ] + [Record("frame_0020", "result", "raw/frame_0020.jpg")]
    records.append(Record("0000000c__frame_0012", "result", "x/images/0000000c__frame_0012.jpg", "r.json", "r.json#12"))
    chosen = choose_annotated(
        records, "result", image_ids=["frame_0003", "frame_0004.jpg", "00000005-frame_0005", "frame_0012"]
    )
    assert chosen == ["00000003-frame_0003", "00000004-frame_0004", "00000005-frame_0005", "0000000c__frame_0012"]
    with pytest.raises(InputError, match=r"annotation.ids: 'frame_0020' is not a labelled 'result' image"):
        choose_annotated(records, "result", image_ids=["frame_0020"])  # unlabelled
