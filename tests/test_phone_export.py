"""The story of a user with phone photos: a Label Studio export of the labelled images beside a folder
of the robot's frames (some EXIF-rotated, one grayscale, one RGBA, two sizes), `spino init` on the
folder holding both, Snakemake to the end, and `spino segment` on the frames."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spino.classes import DEMO
from spino.cli import main as spino
from spino.data import open_dataset
from spino.data.io import read_image
from spino.data.manifest import read_manifest

from helpers import coco_annotations, exif_photo, shrink_init_config, snakemake

LABELLED = 13  # init keeps 3 of them for scoring: k 10
TURNED = {"demo_0003": 6, "demo_0007": 8}  # labelled phone photos
RAW_TURNED = {"demo_0014": 6, "demo_0015": 8}  # unlabelled ones
GRAY, RGBA = "demo_0016", "demo_0017"
OTHER_SIZE = ("demo_0018", "demo_0019")  # a second camera's
SECOND_CAMERA = (96, 160)


def label_studio_export(demo: Path, parent: Path) -> dict[str, np.ndarray]:
    """``parent/export``: Label Studio's COCO export of the first LABELLED demo images (result.json,
    images/<8 hex>-<name>.jpg as it renames uploads, categories without isthing), and ``parent/raw``:
    every frame as the robot stored it (the labelled ones too, the same bytes). Returns each frame's
    upright image as a viewer shows it."""
    dataset = open_dataset("demo", demo)
    export, raw = parent / "export", parent / "raw"
    (export / "images").mkdir(parents=True)
    raw.mkdir()
    images, annotations, upright = [], [], {}
    for n, record in enumerate(sorted(dataset.scan(), key=lambda r: r.image_id)):
        name = record.image_id
        image, pan = dataset.read_sample(record)
        if name in OTHER_SIZE:
            image = np.asarray(Image.fromarray(image).resize(SECOND_CAMERA[::-1], Image.Resampling.BILINEAR))
        orientation = {**TURNED, **RAW_TURNED}.get(name, 1)
        if name == GRAY:
            Image.fromarray(image).convert("L").save(raw / f"{name}.jpg", quality=100)
        elif name == RGBA:
            Image.fromarray(image).convert("RGBA").save(raw / f"{name}.png")
        else:
            exif_photo(image, raw / f"{name}.jpg", orientation)
        upright[name] = read_image(raw / (f"{name}.png" if name == RGBA else f"{name}.jpg"))
        if n < LABELLED:
            upload = f"{n:08x}-{name}.jpg"
            shutil.copy(raw / f"{name}.jpg", export / "images" / upload)
            h, w = pan.shape
            images.append({"id": n, "file_name": f"images/{upload}", "height": h, "width": w})
            annotations += coco_annotations(pan, n, first_id=len(annotations) + 1)
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(DEMO.names)]
    (export / "result.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return upright


@pytest.mark.e2e
def test_phone_photos_from_a_label_studio_export_and_a_raw_folder_run_end_to_end(tmp_path: Path, capsys) -> None:
    from spino.data.synthetic import DemoSpec, write_demo
    from spino.store import LabelStore

    write_demo(tmp_path / "demo", DemoSpec(n_train=20, n_val=0, height=64, width=128, seed=1))
    parent = tmp_path / "robot"
    upright = label_studio_export(tmp_path / "demo", parent)
    work = tmp_path / "work"
    work.mkdir()

    assert spino(["init", str(parent), "--run", "robot", "--out", str(work / "robot.yaml")]) == 0
    said = capsys.readouterr().out
    assert "dataset.unlabelled: 7 images added to split 'result' unlabelled; 13 found again and taken once" in said
    assert "4 images carry an EXIF orientation, read upright" in said
    assert re.search(r"estimated time on this machine \(\d+ cores\): about \d+ (min|s) \(heads", said), said
    config = yaml.safe_load((work / "robot.yaml").read_text())
    assert config["dataset"] == {
        "kind": "coco",
        "root": str(parent / "export"),
        "splits": ["result"],
        "unlabelled": [str(parent / "raw")],
        "things": ["person", "car"],
    }
    assert config["annotation"] == {"split": "result", "k": 10}
    assert config["panoptic"]["eval_splits"] == ["result"]  # scored on the 3 labelled images kept out

    shrink_init_config(config)
    result = snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = work / "results" / "robot"
    index = (work / "logs" / "robot" / "index.log").read_text()
    assert "20 images, 13 with ground truth, 10 annotated" in index
    assert "2 images of other sizes are resized to it for the stores (2 at 160x96)" in index

    # The labelled phone photos: their store images are the upright pictures the labels were drawn on,
    # and their ground truth is the export's, pixel for pixel.
    gt = LabelStore(results / "ground_truth.zarr")
    export = open_dataset("coco", parent / "export", ["result"], things=["person", "car"])
    for name in TURNED:
        record = next(r for r in export.scan() if r.image_id.endswith(name))
        i = gt.index_of(record.image_id)
        assert np.abs(gt.read_image(gt.meta["image_paths"][i]).astype(int) - upright[name]).mean() < 2
        assert np.array_equal(gt.panoptic(i), export.read_panoptic(record))
    scores = json.loads((results / "scores" / "predictions.json").read_text())
    assert scores["summary"]["images"] == 3
    report = (results / "report" / "report.html").read_text()
    assert "scored on images it trained on</b>: split 'result'" in report
    for rule in ("train_semantic_head", "pseudo_label", "train_panoptic"):  # measured, and estimated beside it
        assert re.search(rf"<td>{rule}</td><td>[\d.]+</td><td>\d+</td>", report), rule

    # A review round of the raw frames, pre-drawn for CVAT (read back by spino's COCO reader).
    config["review"] = {"k": 3}
    result = snakemake(work, config, "review")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(results / "review" / "round-1" / "chosen.csv") as f:
        chosen = [row["image_id"] for row in csv.DictReader(f)]
    assert len(chosen) == 3 and not set(chosen) & {r.image_id for r in export.scan() if r.has_gt}
    cvat = open_dataset("coco", results / "review" / "round-1" / "cvat", ["default"])
    assert sorted(r.image_id for r in cvat.scan()) == sorted(chosen)

    # The round taken back as CVAT exports it, every pre-drawn segment accepted: the raw frames chosen
    # become annotated (round 1) with the labels drawn for them; the first annotations stay.
    shutil.copytree(results / "review" / "round-1" / "cvat", work / "exports" / "round-1")
    config["annotation"] = {**config["annotation"], "corrections": [str(work / "exports" / "round-1")]}
    result = snakemake(work, config, "results/robot/manifest.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    entries = {e.image_id: e for e in read_manifest(results / "manifest.csv")}
    assert sorted(i for i, e in entries.items() if e.round == 1 and e.annotated and e.has_gt) == sorted(chosen)
    assert sum(e.annotated and e.round == 0 for e in entries.values()) == 10
    for record in cvat.scan():
        assert np.array_equal(cvat.read_panoptic(record), export.read_panoptic(entries[record.image_id].record))

    # The frames segmented, each at its upright size; a turned photo as its upright picture is.
    seg = tmp_path / "seg"
    model = str(results / "panoptic" / "model.pt")
    assert spino(["segment", model, str(parent / "raw"), "--out", str(seg), "--format", "gtfine"]) == 0
    upright_dir = tmp_path / "upright"
    upright_dir.mkdir()
    for name in RAW_TURNED:
        Image.fromarray(upright[name]).save(upright_dir / f"{name}.png")
    assert (
        spino(["segment", model, str(upright_dir), "--out", str(tmp_path / "seg-upright"), "--format", "gtfine"]) == 0
    )
    for name, image in upright.items():
        labels = sorted(seg.rglob(f"{name}_gtFine_labelIds.png"))
        assert labels, sorted(p.name for p in seg.rglob("*"))[:20]
        assert np.asarray(Image.open(labels[0])).shape == image.shape[:2]
    for name in RAW_TURNED:
        turned = np.asarray(Image.open(next(seg.rglob(f"{name}_gtFine_labelIds.png"))))
        straight = np.asarray(Image.open(next((tmp_path / "seg-upright").rglob(f"{name}_gtFine_labelIds.png"))))
        assert (turned == straight).mean() > 0.97
