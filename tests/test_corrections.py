"""Corrections taken back (annotation.corrections): a review round's export, corrected in CVAT or
Label Studio, makes its images annotated with the export's labels, round by round; what cannot be
taken stops the index in one line naming the export and the image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.manifest import read_manifest
from spino.encoding import semantic_of
from spino.prelabels import PreLabel, write_cvat_coco

from helpers import one_line_error, spino_here

ROAD, SIDEWALK = DEMO.names.index("road"), DEMO.names.index("sidewalk")


def corrected(demo_root: Path, out: Path, ids: list[str]) -> tuple[Path, dict[str, np.ndarray]]:
    """A CVAT COCO 1.0 export of ``ids`` whose labels are the ground truth with its road drawn as
    sidewalk: labels the index can only have taken from the export."""
    ds = open_dataset("demo", demo_root)
    records = {r.image_id: r for r in ds.scan()}
    labels, drawn = [], {}
    for image_id in ids:
        pan = ds.read_panoptic(records[image_id]).copy()
        pan[semantic_of(pan) == ROAD] = SIDEWALK * 1000
        drawn[image_id] = pan
        labels.append(PreLabel(image_id, Path(records[image_id].image), pan, np.ones(pan.shape)))
    write_cvat_coco(out, labels, DEMO)
    return out, drawn


def index(demo_root: Path, out: Path, *corrections: Path):
    args = ["index", "--dataset-kind", "demo", "--dataset-root", str(demo_root), "--k", "2", "--seed", "0"]
    return spino_here(*args, "--corrections", *map(str, corrections), "--out", str(out / "m.csv"))


def test_a_corrected_export_annotates_its_images_with_its_labels_round_by_round(
    demo_root: Path, tmp_path: Path
) -> None:
    assert spino_here("index", "--dataset-kind", "demo", "--dataset-root", str(demo_root), "--k", "2",
                      "--out", str(tmp_path / "before.csv")).returncode == 0  # fmt: skip
    before = read_manifest(tmp_path / "before.csv")
    chosen_first = [e.image_id for e in before if e.annotated]
    a, b, c, untouched = [e.image_id for e in before if e.split == "train" and not e.annotated][:4]
    first, drawn = corrected(demo_root, tmp_path / "round-1", [a, b])
    second, drawn2 = corrected(demo_root, tmp_path / "round-2", [c])
    # Label Studio's names: "images/<hash>__<name>" in a result.json beside its images
    coco = json.loads((second / "annotations" / "instances_default.json").read_text())
    for image in coco["images"]:
        image["file_name"] = f"images/1a2b3c4d__{image['file_name']}"
    (second / "result.json").write_text(json.dumps(coco))
    (second / "annotations" / "instances_default.json").unlink()
    result = index(demo_root, tmp_path, first, second)
    assert result.returncode == 0, result.stderr
    assert f"round 1: 2 images from {first / 'annotations' / 'instances_default.json'}" in result.stdout
    assert f"round 2: 1 images from {second / 'result.json'}" in result.stdout
    entries = {e.image_id: e for e in read_manifest(tmp_path / "m.csv")}
    assert {i for i, e in entries.items() if e.annotated and e.round == 0} == set(chosen_first)  # the draw stays
    assert {i: e.round for i, e in entries.items() if e.round} == {a: 1, b: 1, c: 2}
    assert all(entries[i].annotated for i in (a, b, c))
    ds = open_dataset("demo", demo_root)
    for image_id, pan in {**drawn, **drawn2}.items():
        label = ds.read_panoptic(entries[image_id].record)
        assert np.array_equal(semantic_of(label), semantic_of(pan))  # RLE: exactly what was exported
        things = np.asarray(DEMO.thing)[semantic_of(pan)]
        pairs = set(zip(pan[things].tolist(), label[things].tolist()))  # the same instances, renumbered
        assert len(pairs) == len(np.unique(pan[things])) == len(np.unique(label[things])) > 0
    assert entries[untouched].round == 0 and not entries[untouched].annotated


@pytest.mark.parametrize(
    "bad, fragments",
    [
        ("image", ["image 'nope.png' is not an image of the run's dataset"]),
        ("class", ["image 'demo_0004.png' has segments of 'tram', not a class of the run"]),
        ("size", ["image 'demo_0004.png' is 96x48 in the export and 192x96 in the run", "the tool resized it"]),
    ],
)
def test_a_corrected_export_the_run_cannot_take_stops_the_index_in_one_line(
    demo_root: Path, tmp_path: Path, bad: str, fragments: list[str]
) -> None:
    folder, _ = corrected(demo_root, tmp_path / "round-1", ["demo_0004", "demo_0005"])
    path = folder / "annotations" / "instances_default.json"
    coco = json.loads(path.read_text())
    first = coco["images"][0]
    if bad == "image":
        coco["images"][1]["file_name"] = "nope.png"
    elif bad == "class":
        coco["categories"].append({"id": 99, "name": "tram", "supercategory": "", "isthing": 1})
        next(a for a in coco["annotations"] if a["image_id"] == first["id"])["category_id"] = 99
    else:
        first["width"], first["height"] = first["width"] // 2, first["height"] // 2
    path.write_text(json.dumps(coco))
    one_line_error(index(demo_root, tmp_path, folder), "index", str(path), *fragments)
    assert not (tmp_path / "m.csv").exists()


def test_a_panoptic_export_or_a_path_that_names_nothing_is_refused_in_one_line(demo_root: Path, tmp_path: Path) -> None:
    folder, _ = corrected(demo_root, tmp_path / "round-1", ["demo_0004"])
    path = folder / "annotations" / "instances_default.json"
    coco = json.loads(path.read_text())
    coco["annotations"] = [{"image_id": coco["images"][0]["id"], "file_name": "x.png", "segments_info": []}]
    path.write_text(json.dumps(coco))
    one_line_error(index(demo_root, tmp_path, folder), "index", str(path), "a COCO panoptic file", "COCO instances")

    from spino.choices import check_config
    from spino.workflow_config import missing_inputs

    config = check_config(
        {
            "run": "r",
            "dataset": {"kind": "demo", "root": str(demo_root)},
            "annotation": {"k": 2, "corrections": [str(tmp_path / "nothing")]},
        }
    )
    assert missing_inputs(config) == [f"annotation.corrections: {tmp_path / 'nothing'}: not found"]
