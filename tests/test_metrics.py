"""PQ/SQ/RQ and mIoU equal cityscapesscripts' official evaluators on the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.cityscapes import Cityscapes
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.export import export_store
from spino.metrics import PanopticStats

from helpers import assert_same_pq, class_ious, official_pq, store_from_maps
from perturb import perturb

TOL = 1e-6


def _predictions(gts: list[np.ndarray], class_set, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [perturb(gt, class_set, rng) for gt in gts]


def test_pq_and_miou_match_cityscapesscripts_on_real_cityscapes(exact8: Path, tmp_path: Path) -> None:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as pixel_eval
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    convert2panoptic(str(exact8 / "gtFine"), str(tmp_path), useTrainId=True, setNames=["train"])
    dataset = Cityscapes(exact8, ["train"])
    records = dataset.scan()
    gts = [dataset.read_panoptic(r) for r in records]
    preds = _predictions(gts, dataset.class_set, seed=0)
    stats = PanopticStats(dataset.class_set.num_classes)
    for gt, pred in zip(gts, preds):
        stats.update(gt, pred, dataset.class_set)
    ours = stats.summary(dataset.class_set)
    assert 0.2 < ours["all"]["pq"] < 0.95  # the perturbations really cost something

    store = store_from_maps(tmp_path / "pred.zarr", [r.image_id for r in records], preds, dataset.class_set)
    export_store(store, tmp_path / "pred", "coco")
    official = official_pq(
        tmp_path / "cityscapes_panoptic_train_trainId.json",
        tmp_path / "cityscapes_panoptic_train_trainId",
        tmp_path / "pred",
        tmp_path,
    )
    assert_same_pq(ours, official, dataset.class_set.names)

    export_store(store, tmp_path / "pred_gtfine", "gtfine")
    args = pixel_eval.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    pred_files = [str(next((tmp_path / "pred_gtfine").rglob(f"{r.image_id}_gtFine_labelIds.png"))) for r in records]
    result = pixel_eval.evaluateImgLists(pred_files, [r.semantic for r in records], args)
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"], abs=TOL)
    for name in dataset.class_set.names:
        value, iou = result["classScores"][name], ours["per_class"][name]["iou"]
        assert (iou is None and np.isnan(value)) or iou == pytest.approx(value, abs=TOL), name


def test_pq_matches_cityscapesscripts_on_synthetic_data_with_crowd(demo_root: Path, tmp_path: Path) -> None:
    dataset = open_dataset("demo", demo_root)
    records = dataset.scan()
    gts = [dataset.read_panoptic(r) for r in records]
    for gt in gts[::2]:  # make crowd regions: one thing instance per image loses its instance number
        things = [s for s in np.unique(gt) if s % LABEL_DIVISOR]
        gt[gt == things[0]] = things[0] // LABEL_DIVISOR * LABEL_DIVISOR
        gt[:4, :] = IGNORE_PANOPTIC
    preds = _predictions(gts, DEMO, seed=1)
    stats = PanopticStats(DEMO.num_classes)
    for gt, pred in zip(gts, preds):
        stats.update(gt, pred, DEMO)
    ours = stats.summary(DEMO)

    ids = [r.image_id for r in records]
    export_store(store_from_maps(tmp_path / "gt.zarr", ids, gts, DEMO), tmp_path / "gt", "coco")
    export_store(store_from_maps(tmp_path / "pred.zarr", ids, preds, DEMO), tmp_path / "pred", "coco")
    gt_json = json.loads((tmp_path / "gt" / "panoptic.json").read_text())
    assert any(s["iscrowd"] for a in gt_json["annotations"] for s in a["segments_info"])
    official = official_pq(tmp_path / "gt" / "panoptic.json", tmp_path / "gt" / "panoptic", tmp_path / "pred", tmp_path)
    assert_same_pq(ours, official, DEMO.names)


def test_miou_equals_direct_confusion_count() -> None:
    rng = np.random.default_rng(0)
    gt_sem = rng.integers(0, 7, (40, 50))
    gt_sem[:5] = 255
    pred_sem = np.where(rng.random((40, 50)) < 0.3, rng.integers(0, 7, (40, 50)), gt_sem)
    pred_sem[10:12] = 255
    stats = PanopticStats(7)
    stats.update((gt_sem * LABEL_DIVISOR).astype(np.uint32), (pred_sem * LABEL_DIVISOR).astype(np.uint32), DEMO)
    ious = class_ious(pred_sem, gt_sem, 7)
    assert None not in ious and stats.summary(DEMO)["miou"] == pytest.approx(np.mean(ious), abs=1e-12)


def test_stats_accumulate_across_shards_like_one_pass(demo_root: Path) -> None:
    dataset = open_dataset("demo", demo_root)
    gts = [dataset.read_panoptic(r) for r in dataset.scan()]
    preds = _predictions(gts, DEMO, seed=2)
    whole, parts = PanopticStats(7), [PanopticStats(7), PanopticStats(7)]
    for i, (gt, pred) in enumerate(zip(gts, preds)):
        whole.update(gt, pred, DEMO)
        parts[i % 2].update(gt, pred, DEMO)
    merged = PanopticStats.from_dict(parts[0].to_dict())
    merged += PanopticStats.from_dict(json.loads(json.dumps(parts[1].to_dict())))
    assert merged.summary(DEMO) == whole.summary(DEMO)


def test_prediction_with_unknown_class_is_rejected() -> None:
    gt = np.zeros((4, 4), np.uint32)
    pred = np.full((4, 4), 42 * LABEL_DIVISOR, np.uint32)
    with pytest.raises(ValueError, match="outside class set"):
        PanopticStats(7).update(gt, pred, DEMO)
