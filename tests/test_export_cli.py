"""`spino export`, `evaluate`, `inspect` and `info` on a ground-truth store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from spino.cli import main as spino
from spino.data.io import read_label


def test_gtfine_export_scores_pq_one_against_its_store(gt_store: Path, tmp_path: Path) -> None:
    assert spino(["export", str(gt_store), "--format", "gtfine", "--out", str(tmp_path / "gtfine")]) == 0
    files = sorted((tmp_path / "gtfine").glob("*_gtFine_instanceIds.png"))
    assert len(files) == 12 and read_label(files[0]).dtype == np.uint16
    assert spino(["evaluate", str(tmp_path / "gtfine"), "--gt", str(gt_store), "--json", str(tmp_path / "s.json"),
                  "--csv", str(tmp_path / "s.csv")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert summary["all"]["pq"] == 1.0 and summary["miou"] == 1.0 and summary["images"] == 12
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "class,thing,pq,sq,rq,iou,tp,fp,fn"


def test_coco_export_has_one_segment_per_instance(gt_store: Path, tmp_path: Path) -> None:
    assert spino(["export", str(gt_store), "--format", "coco", "--out", str(tmp_path / "coco")]) == 0
    payload = json.loads((tmp_path / "coco" / "panoptic.json").read_text())
    ann = payload["annotations"][0]
    rgb = np.asarray(Image.open(tmp_path / "coco" / "panoptic" / ann["file_name"])).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids)) - {0})
    assert all(s["area"] == int((ids == s["id"]).sum()) for s in ann["segments_info"])
    assert {c["name"] for c in payload["categories"]} >= {"car", "person", "road"}


def test_inspect_and_info(gt_store: Path, tmp_path: Path, capsys) -> None:
    assert spino(["inspect", str(gt_store), "--index", "3", "--out", str(tmp_path / "o.png")]) == 0
    picture = np.asarray(Image.open(tmp_path / "o.png"))
    assert picture.shape == (96, 3 * 192, 3) and picture.std() > 10
    capsys.readouterr()
    assert spino(["info", str(gt_store), "--counts"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] and info["shards"] == 3 and info["shape"] == [12, 96, 192]
    assert sum(c["pixels"] for c in info["counts"].values()) == 12 * 96 * 192
    assert spino(["inspect", str(gt_store), "--index", "99", "--out", str(tmp_path / "x.png")]) == 1
