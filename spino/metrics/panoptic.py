"""Panoptic quality (PQ = SQ x RQ) and mIoU, accumulable across images and shards.

PQ follows the COCO-panoptic rules as cityscapesscripts' evalPanopticSemanticLabeling applies them:
a ground-truth and a predicted segment of the same class match when IoU > 0.5, where the union
leaves out predicted pixels on void ground truth; ground-truth crowd regions (thing pixels without
instance) never count as false negatives, and an unmatched prediction is a false positive only if
at most half of it lies on void or on a crowd region of its class. Averages run over the classes
that occur (tp + fp + fn > 0). mIoU comes from a confusion matrix over non-void ground truth;
predicted void counts against the true class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.data.io import atomic_path
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.errors import InputError

_OFFSET = np.uint64(1 << 32)


@dataclass
class PanopticStats:
    """Per-class sums (tp, fp, fn, summed IoU of matches) and a confusion matrix; add with +=."""

    num_classes: int
    tp: np.ndarray = field(default=None)
    fp: np.ndarray = field(default=None)
    fn: np.ndarray = field(default=None)
    iou: np.ndarray = field(default=None)
    confusion: np.ndarray = field(default=None)
    images: int = 0

    def __post_init__(self) -> None:
        c = self.num_classes
        self.tp = np.zeros(c, np.int64) if self.tp is None else np.asarray(self.tp, np.int64)
        self.fp = np.zeros(c, np.int64) if self.fp is None else np.asarray(self.fp, np.int64)
        self.fn = np.zeros(c, np.int64) if self.fn is None else np.asarray(self.fn, np.int64)
        self.iou = np.zeros(c, np.float64) if self.iou is None else np.asarray(self.iou, np.float64)
        # rows: ground truth class; columns: predicted class, the last one for predicted void.
        self.confusion = (
            np.zeros((c, c + 1), np.int64) if self.confusion is None else np.asarray(self.confusion, np.int64)
        )

    def __iadd__(self, other: PanopticStats) -> PanopticStats:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot add stats of different class counts")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou += other.iou
        self.confusion += other.confusion
        self.images += other.images
        return self

    def update(self, gt: np.ndarray, pred: np.ndarray, class_set: ClassSet) -> None:
        """Add one image (two panoptic maps in spino's encoding)."""
        if gt.shape != pred.shape:
            raise InputError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
        self._update_pq(gt.astype(np.uint64).ravel(), pred.astype(np.uint64).ravel(), class_set)
        self.update_confusion(gt.ravel() // LABEL_DIVISOR, pred.ravel() // LABEL_DIVISOR)
        self.images += 1

    def update_confusion(self, gt_cls: np.ndarray, pred_cls: np.ndarray) -> None:
        """Add semantic class maps to the confusion matrix only (mIoU; STQ's segmentation quality)."""
        c = self.num_classes
        valid = gt_cls != IGNORE
        pred_col = np.where(pred_cls[valid] == IGNORE, c, pred_cls[valid]).astype(np.int64)
        self.confusion += np.bincount(
            gt_cls[valid].astype(np.int64) * (c + 1) + pred_col, minlength=c * (c + 1)
        ).reshape(c, c + 1)

    def _update_pq(self, gt: np.ndarray, pred: np.ndarray, class_set: ClassSet) -> None:
        void = np.uint64(IGNORE_PANOPTIC)
        bad = np.unique(pred[pred != void] // LABEL_DIVISOR)
        bad = bad[bad >= class_set.num_classes]
        if bad.size:
            raise InputError(f"prediction uses class ids {bad.tolist()} outside class set {class_set.name!r}")
        thing = class_set.thing_mask()
        gt_ids, gt_area = np.unique(gt, return_counts=True)
        pred_ids, pred_area = np.unique(pred, return_counts=True)
        gt_area_of = dict(zip(gt_ids.tolist(), gt_area.tolist()))
        pred_area_of = dict(zip(pred_ids.tolist(), pred_area.tolist()))
        gt_area_of.pop(IGNORE_PANOPTIC, None)
        pred_area_of.pop(IGNORE_PANOPTIC, None)

        def is_crowd(seg: int) -> bool:
            cls, inst = divmod(seg, LABEL_DIVISOR)
            return bool(thing[cls]) and inst == 0

        pairs, inter = np.unique(gt * _OFFSET + pred, return_counts=True)
        overlap = dict(zip(zip((pairs // _OFFSET).tolist(), (pairs % _OFFSET).tolist()), inter.tolist()))

        gt_matched, pred_matched = set(), set()
        for (g, p), n in overlap.items():
            if g == IGNORE_PANOPTIC or p == IGNORE_PANOPTIC or is_crowd(g):
                continue
            cls = g // LABEL_DIVISOR
            if cls != p // LABEL_DIVISOR:
                continue
            union = pred_area_of[p] + gt_area_of[g] - n - overlap.get((IGNORE_PANOPTIC, p), 0)
            iou = n / union
            if iou > 0.5:
                self.tp[cls] += 1
                self.iou[cls] += iou
                gt_matched.add(g)
                pred_matched.add(p)

        crowd_of_class = {}
        for g in gt_area_of:
            if g in gt_matched:
                continue
            if is_crowd(g):
                crowd_of_class[g // LABEL_DIVISOR] = g
                continue
            self.fn[g // LABEL_DIVISOR] += 1

        for p, area in pred_area_of.items():
            if p in pred_matched:
                continue
            cls = p // LABEL_DIVISOR
            covered = overlap.get((IGNORE_PANOPTIC, p), 0)
            if cls in crowd_of_class:
                covered += overlap.get((crowd_of_class[cls], p), 0)
            if covered / area > 0.5:
                continue
            self.fp[cls] += 1

    # -- summaries ---------------------------------------------------------------------------
    def per_class(self) -> dict[str, np.ndarray]:
        """PQ, SQ, RQ, IoU per class (0 where a class never occurs; ``occurs`` says which)."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        with np.errstate(divide="ignore", invalid="ignore"):
            pq = np.where(denom > 0, self.iou / denom, 0.0)
            sq = np.where(self.tp > 0, self.iou / np.maximum(self.tp, 1), 0.0)
            rq = np.where(denom > 0, self.tp / denom, 0.0)
            tp_px = np.diag(self.confusion[:, : self.num_classes])
            iou_den = self.confusion.sum(1) + self.confusion[:, : self.num_classes].sum(0) - tp_px
            iou_px = np.where(iou_den > 0, tp_px / np.maximum(iou_den, 1), np.nan)
        return {"pq": pq, "sq": sq, "rq": rq, "occurs": denom > 0, "iou": iou_px}

    def summary(self, class_set: ClassSet) -> dict:
        """All / Things / Stuff averages, per-class values and mIoU, in plain Python types."""
        pc = self.per_class()
        groups = {"all": np.ones(self.num_classes, bool), "things": class_set.thing_mask()[: self.num_classes]}
        groups["stuff"] = ~groups["things"]
        out: dict = {"images": self.images}
        for name, members in groups.items():
            sel = members & pc["occurs"]
            n = int(sel.sum())
            out[name] = {key: float(pc[key][sel].mean()) if n else 0.0 for key in ("pq", "sq", "rq")} | {"n": n}
        iou = pc["iou"]
        out["miou"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
        labelled = self.confusion.sum()
        out["accuracy"] = float(np.trace(self.confusion[:, : self.num_classes]) / labelled) if labelled else 0.0
        out["per_class"] = {
            name: {
                "pq": float(pc["pq"][i]),
                "sq": float(pc["sq"][i]),
                "rq": float(pc["rq"][i]),
                "iou": None if np.isnan(iou[i]) else float(iou[i]),
                "tp": int(self.tp[i]),
                "fp": int(self.fp[i]),
                "fn": int(self.fn[i]),
                "thing": bool(class_set.thing[i]),
            }
            for i, name in enumerate(class_set.names)
        }
        return out

    # -- persistence (so shards can be scored separately and summed) ----------------------
    def to_dict(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "images": self.images,
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
            "iou": self.iou.tolist(),
            "confusion": self.confusion.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PanopticStats:
        return cls(**data)


def write_not_scored(reason: str, json_path: str | Path, csv_path: str | Path) -> None:
    """Scores that could not be counted, and why (the report shows the reason): a JSON with
    ``"not_scored"`` instead of a summary, and a CSV with only the header."""
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps({"not_scored": reason}, indent=2))
    with atomic_path(csv_path) as tmp:
        tmp.write_text(CSV_HEADER + "\n")


CSV_HEADER = "class,thing,pq,sq,rq,iou,tp,fp,fn"


def write_scores(
    stats: PanopticStats,
    class_set: ClassSet,
    json_path: str | Path,
    csv_path: str | Path,
    mapping: np.ndarray | None = None,
) -> dict:
    """Write the summary as JSON (with the raw sums, for re-aggregation) and a per-class CSV table.

    ``mapping``: the class each predicted cluster was matched to, when the prediction's ids were
    clusters (``spino evaluate --matching hungarian``); the summary says which matching was used."""
    summary = stats.summary(class_set)
    summary["matching"] = "none" if mapping is None else "hungarian"
    if mapping is not None:
        summary["clusters"] = {str(cluster): class_set.names[c] for cluster, c in enumerate(mapping.tolist())}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "stats": stats.to_dict()}, indent=2))
    rows = [CSV_HEADER]
    for name, v in summary["per_class"].items():
        iou = "" if v["iou"] is None else f"{v['iou']:.6f}"
        rows.append(
            f"{name},{int(v['thing'])},{v['pq']:.6f},{v['sq']:.6f},{v['rq']:.6f},{iou},{v['tp']},{v['fp']},{v['fn']}"
        )
    for group in ("all", "things", "stuff"):
        g = summary[group]
        miou = f"{summary['miou']:.6f}" if group == "all" else ""
        rows.append(f"[{group}],,{g['pq']:.6f},{g['sq']:.6f},{g['rq']:.6f},{miou},,,")
    with atomic_path(csv_path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    """One line of a score summary (percentages), as ``spino evaluate`` prints it."""
    a, t, s = summary["all"], summary["things"], summary["stuff"]
    return (
        f"PQ {100 * a['pq']:.1f}  SQ {100 * a['sq']:.1f}  RQ {100 * a['rq']:.1f}  | things PQ {100 * t['pq']:.1f}  "
        f"stuff PQ {100 * s['pq']:.1f}  | mIoU {100 * summary['miou']:.1f}  accuracy {100 * summary['accuracy']:.1f}  "
        f"(matching: {summary['matching']})"
    )
