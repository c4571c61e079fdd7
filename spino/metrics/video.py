"""Video panoptic metrics: STQ (Weber et al., NeurIPS 2021 Datasets and Benchmarks) with its AQ and
SQ terms, VPQ (Kim et al., CVPR 2020), and identity switches.

A frame is a pair ``(semantic, ids)``: train ids per pixel (255 void) and each thing pixel's track
id (0: none; a thing pixel without id is a crowd region); stuff pixels' ids are ignored. A *tube* is
the pixels of one (class, id) over a sequence.

- STQ = sqrt(AQ x SQ). AQ: for each ground-truth tube g, the sum over the predicted tubes p it
  overlaps of TPA(p, g) x IoU(p, g) (IoU of the whole tubes), divided by |g|; averaged over the
  ground-truth tubes of every sequence. Association is class-agnostic; ground-truth crowd pixels are
  left out of both sides; predicted thing pixels on void ground truth count in |p|, as deeplab2's
  reference does. SQ: mIoU over every frame (as ``PanopticStats``: void ground truth left out,
  predicted void counted against the true class, classes that occur).
- VPQ_k: the PQ of every window of k consecutive frames, its frames side by side as one image (a
  segment must keep its id through the window to match with IoU > 0.5), summed over the windows of
  every sequence; VPQ is the mean over the window sizes that fit. Cityscapes-VPS, labelled every
  fifth frame, calls windows of 1, 2, 3, 4 labelled frames k = 0, 5, 10, 15.
- Identity switches: a ground-truth track matched (IoU > 0.5, same class) in a frame to another
  predicted id than when it was last matched.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.data.io import atomic_path
from spino.encoding import LABEL_DIVISOR
from spino.errors import InputError
from spino.metrics.panoptic import PanopticStats

Frame = tuple[np.ndarray, np.ndarray]  # (semantic uint8, track ids)
_CLASS_SHIFT = np.uint64(1 << 32)


def tube_keys(frame: Frame, class_set: ClassSet) -> tuple[np.ndarray, np.ndarray]:
    """(key, is thing) per pixel, flattened: key = class << 32 | id, the tube a pixel belongs to."""
    semantic, ids = frame
    semantic = semantic.ravel()
    thing = class_set.thing_mask()[np.minimum(semantic, class_set.num_classes - 1)] & (semantic != IGNORE)
    return semantic.astype(np.uint64) * _CLASS_SHIFT + ids.ravel().astype(np.uint64), thing


def _check(gt: Frame, pred: Frame) -> None:
    if gt[0].shape != pred[0].shape or gt[1].shape != gt[0].shape or pred[1].shape != pred[0].shape:
        raise InputError(f"ground truth {gt[0].shape} and prediction {pred[0].shape} differ in shape")


@dataclass
class _SequenceTubes:
    gt: Counter = field(default_factory=Counter)
    pred: Counter = field(default_factory=Counter)
    overlap: Counter = field(default_factory=Counter)
    frames: int = 0

    def association(self) -> float:
        """The sum over ground-truth tubes of sum_p TPA x IoU / |g| (AQ before averaging)."""
        total = 0.0
        for (g, p), tpa in self.overlap.items():
            total += tpa * tpa / (self.gt[g] + self.pred[p] - tpa) / self.gt[g]
        return total


class STQ:
    """Segmentation and Tracking Quality, accumulated frame by frame (sequences in any order)."""

    def __init__(self, class_set: ClassSet):
        self.class_set = class_set
        self.sequences: dict[str, _SequenceTubes] = {}
        self.semantic = PanopticStats(class_set.num_classes)  # only its confusion matrix is read

    def update(self, sequence: str, gt: Frame, pred: Frame) -> None:
        _check(gt, pred)
        tubes = self.sequences.setdefault(sequence, _SequenceTubes())
        tubes.frames += 1
        gt_sem, pred_sem = gt[0].ravel(), pred[0].ravel()
        self.semantic.update_confusion(gt_sem.astype(np.int64), pred_sem.astype(np.int64))
        gt_key, gt_thing = tube_keys(gt, self.class_set)
        pred_key, pred_thing = tube_keys(pred, self.class_set)
        crowd = gt_thing & (gt[1].ravel() == 0)
        gt_in, pred_in = gt_thing & ~crowd, pred_thing & ~crowd
        tubes.gt.update(_counts(gt_key[gt_in]))
        tubes.pred.update(_counts(pred_key[pred_in]))
        both = gt_in & pred_in
        g_ids, g_inv = np.unique(gt_key[both], return_inverse=True)
        p_ids, p_inv = np.unique(pred_key[both], return_inverse=True)
        pairs, counts = np.unique(g_inv.astype(np.int64) * max(len(p_ids), 1) + p_inv, return_counts=True)
        g_ids, p_ids = g_ids.tolist(), p_ids.tolist()
        for pair, n in zip(pairs.tolist(), counts.tolist()):
            gi, pi = divmod(pair, max(len(p_ids), 1))
            tubes.overlap[(g_ids[gi], p_ids[pi])] += n

    def result(self) -> dict:
        tubes = sum(len(t.gt) for t in self.sequences.values())
        aq = sum(t.association() for t in self.sequences.values()) / tubes if tubes else 0.0
        sq = self.semantic.summary(self.class_set)["miou"]
        per_sequence = {
            name: {"aq": t.association() / len(t.gt) if t.gt else 0.0, "tubes": len(t.gt), "frames": t.frames}
            for name, t in self.sequences.items()
        }
        return {"stq": float(np.sqrt(aq * sq)), "aq": aq, "sq": sq, "tubes": tubes, "per_sequence": per_sequence}


def _counts(keys: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(keys, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def window_panoptic(frames: list[Frame], class_set: ClassSet) -> np.ndarray:
    """The frames side by side as one panoptic map in spino's encoding, each tube one instance
    (numbered 1.. in the window), so that PanopticStats scores tubes as segments."""
    semantic = np.concatenate([f[0] for f in frames], axis=1)
    ids = np.concatenate([f[1] for f in frames], axis=1)
    keys, thing = tube_keys((semantic, ids), class_set)
    instance = np.zeros(keys.shape, np.int64)
    tube = thing & (ids.ravel() != 0)
    _, rank = np.unique(keys[tube], return_inverse=True)
    if rank.size and rank.max() + 1 >= LABEL_DIVISOR:
        raise InputError(f"a window of {len(frames)} frames holds over {LABEL_DIVISOR - 1} tracks; use shorter windows")
    instance[tube] = rank + 1
    return (semantic.ravel().astype(np.int64) * LABEL_DIVISOR + instance).reshape(semantic.shape)


class VPQ:
    """Video Panoptic Quality over windows of ``windows`` frames, fed frame by frame (the frames of
    one sequence in order; at most the longest window is kept)."""

    def __init__(self, class_set: ClassSet, windows: tuple[int, ...] = (1, 5, 10, 15)):
        self.class_set, self.windows = class_set, tuple(windows)
        self.stats = {k: PanopticStats(class_set.num_classes) for k in self.windows}
        self.sequence: str | None = None
        self.recent: deque[tuple[Frame, Frame]] = deque(maxlen=max(self.windows))

    def update(self, sequence: str, gt: Frame, pred: Frame) -> None:
        _check(gt, pred)
        if sequence != self.sequence:
            self.sequence = sequence
            self.recent.clear()
        self.recent.append((gt, pred))
        for k in self.windows:
            if len(self.recent) >= k:  # the window of the last k frames
                window = list(self.recent)[-k:]
                self.stats[k].update(
                    window_panoptic([g for g, _ in window], self.class_set),
                    window_panoptic([p for _, p in window], self.class_set),
                    self.class_set,
                )

    def result(self) -> dict:
        per_window = {k: s.summary(self.class_set) for k, s in self.stats.items() if s.images}
        out = {
            str(k): {
                "vpq": v["all"]["pq"],
                "things": v["things"]["pq"],
                "stuff": v["stuff"]["pq"],
                "windows": v["images"],
            }
            for k, v in per_window.items()
        }
        mean = float(np.mean([v["vpq"] for v in out.values()])) if out else 0.0
        return {"vpq": mean, "per_window": out}


class IdSwitches:
    """Identity switches of the ground-truth tracks, and the track-frames they happened in."""

    def __init__(self, class_set: ClassSet):
        self.class_set = class_set
        self.last_match: dict[tuple[str, int], int] = {}
        self.switches = 0
        self.track_frames = 0

    def update(self, sequence: str, gt: Frame, pred: Frame) -> None:
        _check(gt, pred)
        gt_key, gt_thing = tube_keys(gt, self.class_set)
        pred_key, pred_thing = tube_keys(pred, self.class_set)
        g_in, p_in = gt_thing & (gt[1].ravel() != 0), pred_thing & (pred[1].ravel() != 0)
        g_area, p_area = _counts(gt_key[g_in]), _counts(pred_key[p_in])
        self.track_frames += len(g_area)
        both = g_in & p_in & (gt_key // _CLASS_SHIFT == pred_key // _CLASS_SHIFT)
        pairs, n = np.unique(np.stack([gt_key[both], pred_key[both]]), axis=1, return_counts=True)
        for g, p, inter in zip(pairs[0].tolist(), pairs[1].tolist(), n.tolist()):
            if inter / (g_area[g] + p_area[p] - inter) <= 0.5:
                continue
            previous = self.last_match.get((sequence, g))
            self.switches += previous is not None and previous != p
            self.last_match[(sequence, g)] = p

    def result(self) -> dict:
        tracks = len(self.last_match)
        return {
            "id_switches": self.switches,
            "matched_tracks": tracks,
            "track_frames": self.track_frames,
            "per_100_track_frames": 100 * self.switches / self.track_frames if self.track_frames else 0.0,
        }


@dataclass
class VideoScores:
    """STQ, VPQ and identity switches, fed together."""

    class_set: ClassSet
    windows: tuple[int, ...] = (1, 5, 10, 15)

    def __post_init__(self):
        self.stq = STQ(self.class_set)
        self.vpq = VPQ(self.class_set, self.windows)
        self.switches = IdSwitches(self.class_set)
        self.frames = 0

    def update(self, sequence: str, gt: Frame, pred: Frame) -> None:
        for metric in (self.stq, self.vpq, self.switches):
            metric.update(sequence, gt, pred)
        self.frames += 1

    def result(self) -> dict:
        return {"frames": self.frames, **self.stq.result(), **self.vpq.result(), **self.switches.result()}


def write_video_scores(result: dict, json_path: str | Path, csv_path: str | Path) -> None:
    """The scores as JSON (``spino evaluate --video``) and a CSV of one metric per row."""
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps({"summary": result}, indent=2))
    rows = ["metric,value"]
    rows += [f"{key},{result[key]:.6f}" for key in ("stq", "aq", "sq", "vpq")]
    for k, v in result["per_window"].items():
        rows += [f"vpq_{k},{v['vpq']:.6f}", f"vpq_{k}_things,{v['things']:.6f}", f"vpq_{k}_stuff,{v['stuff']:.6f}"]
    rows += [f"id_switches,{result['id_switches']}", f"per_100_track_frames,{result['per_100_track_frames']:.6f}"]
    with atomic_path(csv_path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def format_video_summary(result: dict) -> str:
    """One line of video scores (percentages), as ``spino evaluate --video`` prints it."""
    windows = "  ".join(f"VPQ_{k} {100 * v['vpq']:.1f}" for k, v in result["per_window"].items())
    return (
        f"STQ {100 * result['stq']:.1f}  AQ {100 * result['aq']:.1f}  SQ {100 * result['sq']:.1f}  | "
        f"VPQ {100 * result['vpq']:.1f} ({windows})  | id switches {result['id_switches']} "
        f"({result['per_100_track_frames']:.2f} per 100 track-frames)"
    )
