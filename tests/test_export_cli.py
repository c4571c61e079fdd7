"""`spino export`, `evaluate`, `inspect` and `info` on a ground-truth store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from spino.cli import main as spino
from spino.data.io import read_label
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.store import LabelStore

from helpers import assert_inspect_picture


def test_gtfine_export_scores_pq_one_against_its_store(gt_store: Path, tmp_path: Path) -> None:
    assert spino(["export", str(gt_store), "--format", "gtfine", "--out", str(tmp_path / "gtfine")]) == 0
    files = sorted((tmp_path / "gtfine").glob("*_gtFine_instanceIds.png"))
    assert len(files) == 12 and read_label(files[0]).dtype == np.uint16
    assert (
        spino(
            [
                "evaluate",
                str(tmp_path / "gtfine"),
                "--gt",
                str(gt_store),
                "--json",
                str(tmp_path / "s.json"),
                "--csv",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert summary["all"]["pq"] == 1.0 and summary["miou"] == 1.0 and summary["images"] == 12
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "class,thing,pq,sq,rq,iou,tp,fp,fn"


def test_coco_export_has_one_segment_per_instance(gt_store: Path, tmp_path: Path) -> None:
    """Every image's segments are the store's own: one per (class, instance) of its panoptic map, with
    that class, iscrowd where a thing has no instance number, and exactly that segment's pixels."""
    assert spino(["export", str(gt_store), "--format", "coco", "--out", str(tmp_path / "coco")]) == 0
    payload = json.loads((tmp_path / "coco" / "panoptic.json").read_text())
    store = LabelStore(gt_store)
    assert [a["image_id"] for a in payload["annotations"]] == list(store.image_ids)
    assert [(c["id"], c["name"], bool(c["isthing"])) for c in payload["categories"]] == [
        (i, name, thing) for i, (name, thing) in enumerate(zip(store.class_set.names, store.class_set.thing))
    ]
    for index, ann in enumerate(payload["annotations"]):
        pan = store.panoptic(index).astype(np.int64)
        rgb = np.asarray(Image.open(tmp_path / "coco" / "panoptic" / ann["file_name"])).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        segments = {s["id"]: s for s in ann["segments_info"]}
        assert len(segments) == len(ann["segments_info"]) and 0 not in segments
        originals = [p for p in np.unique(pan) if p != IGNORE_PANOPTIC]
        assert len(segments) == len(originals)  # a segment per (class, instance), none merged or split
        assert ((ids == 0) == (pan == IGNORE_PANOPTIC)).all()
        for original in originals:
            where = pan == original
            seg_ids = np.unique(ids[where])
            assert len(seg_ids) == 1 and (where == (ids == seg_ids[0])).all(), original
            cls, inst = divmod(int(original), LABEL_DIVISOR)
            seg = segments[int(seg_ids[0])]
            crowd = bool(store.class_set.thing[cls]) and inst == 0
            assert (seg["category_id"], seg["iscrowd"], seg["area"]) == (cls, int(crowd), int(where.sum())), original
    things = [s for a in payload["annotations"] for s in a["segments_info"] if store.class_set.thing[s["category_id"]]]
    assert len(things) > 3 * len(payload["annotations"])  # several objects per image: merging them would show


def test_inspect_and_info(gt_store: Path, tmp_path: Path, capsys) -> None:
    assert spino(["inspect", str(gt_store), "--index", "3", "--out", str(tmp_path / "o.png")]) == 0
    store = LabelStore(gt_store)
    image = np.asarray(Image.open(store.meta["image_paths"][3]).convert("RGB"))
    assert_inspect_picture(np.asarray(Image.open(tmp_path / "o.png")), store, 3, image)
    capsys.readouterr()
    assert spino(["info", str(gt_store), "--counts"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] and info["shards"] == 3 and info["shape"] == [12, 96, 192]
    assert sum(c["pixels"] for c in info["counts"].values()) == 12 * 96 * 192
    assert spino(["inspect", str(gt_store), "--index", "99", "--out", str(tmp_path / "x.png")]) == 1


def test_gtfine_export_of_real_cityscapes_gives_back_its_files(exact8: Path, tmp_path: Path) -> None:
    """The 8 exact images' labels through `index`, `create-store`, `write-gt`, `gather` and `export
    --format gtfine`: labelIds and instanceIds equal the original gtFine files on every pixel of the 19
    evaluated classes (instance numbers included); the pixels of classes Cityscapes does not evaluate
    come back as void (0)."""
    from spino.classes import CITYSCAPES_19
    from spino.data.base import train_ids

    args = ["--dataset-kind", "cityscapes", "--dataset-root", str(exact8), "--splits", "train"]
    assert spino(["index", *args, "--k", "0", "--out", str(tmp_path / "m.csv")]) == 0
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
                "4",
                "--out",
                str(tmp_path / "gt.zarr"),
            ]
        )
        == 0
    )
    for shard in range(2):
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
                    str(shard),
                ]
            )
            == 0
        )
    assert spino(["gather", str(tmp_path / "gt.zarr")]) == 0
    assert spino(["export", str(tmp_path / "gt.zarr"), "--format", "gtfine", "--out", str(tmp_path / "out")]) == 0
    originals = sorted((exact8 / "gtFine" / "train").glob("*/*_gtFine_labelIds.png"))
    assert len(originals) == 8
    for label_file in originals:
        stem = label_file.name.removesuffix("_gtFine_labelIds.png")
        city = label_file.parent.name
        label, instance = read_label(label_file), read_label(label_file.with_name(f"{stem}_gtFine_instanceIds.png"))
        ours_label = read_label(tmp_path / "out" / city / label_file.name)
        ours_instance = read_label(tmp_path / "out" / city / f"{stem}_gtFine_instanceIds.png")
        evaluated = train_ids(label.astype(np.int64), CITYSCAPES_19, str(label_file)) != 255
        assert 0.8 < evaluated.mean() < 1 and (instance[evaluated] >= 1000).sum() > 1000
        assert np.array_equal(ours_label[evaluated], label[evaluated]), label_file
        assert np.array_equal(ours_instance[evaluated], instance[evaluated]), label_file
        assert (ours_label[~evaluated] == 0).all() and (ours_instance[~evaluated] == 0).all(), label_file


def test_gtfine_writer_puts_a_stores_cityscapes_ids_in_city_folders_and_segment_names_beside_their_input(
    tmp_path: Path,
) -> None:
    """One writer, two namings: a store's Cityscapes ids go into per-city folders as gtFine has them
    (`spino export`); `spino segment`'s names are its inputs' relative paths, written where they are."""
    from spino.classes import CITYSCAPES_19
    from spino.export import LABEL_FORMATS

    writer = LABEL_FORMATS.get("gtfine")(tmp_path, CITYSCAPES_19)
    label = np.zeros((4, 6), np.uint32)
    writer.write(writer.store_name("lindau_000000_000019"), label)
    writer.write("frankfurt_000000_000294_leftImg8bit", label)
    writer.write("drive/frame_0001", label)
    writer.close()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*_gtFine_labelIds.png")) == [
        "drive/frame_0001_gtFine_labelIds.png",
        "frankfurt_000000_000294_gtFine_labelIds.png",
        "lindau/lindau_000000_000019_gtFine_labelIds.png",
    ]
