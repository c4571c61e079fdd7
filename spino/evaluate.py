"""Score label sources (stores or gtFine-form folders) against ground truth, image by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from spino.classes import IGNORE, ClassSet
from spino.data.cityscapes import load_gtfine_prediction, read_gtfine_folder
from spino.data.manifest import read_manifest
from spino.data.video import VideoLabels
from spino.encoding import encode, instance_of, semantic_of
from spino.errors import InputError
from spino.metrics import PanopticStats, VideoScores
from spino.progress import progress
from spino.store import LabelStore


class LabelSource:
    """Panoptic maps by image id, from a label store or from a folder of gtFine-form PNGs."""

    def __init__(self, path: str | Path, class_set: ClassSet | None = None):
        self.path = Path(path)
        if (self.path / "zarr.json").is_file():
            self.store: LabelStore | None = LabelStore(self.path)
            self.store.require_complete()
            self.class_set = self.store.class_set
            self.ids = list(self.store.image_ids)
        else:
            if class_set is None:
                raise InputError(f"{self.path}: a folder of PNGs needs a class set (pass a store as ground truth)")
            self.store = None
            self.class_set = class_set
            self.files = read_gtfine_folder(self.path, class_set)
            self.ids = list(self.files)

    def panoptic(self, image_id: str) -> np.ndarray:
        if self.store is not None:
            return self.store.panoptic(self.store.index_of(image_id))
        return load_gtfine_prediction(self.files[image_id], self.class_set)


def common_ids(prediction: LabelSource, ground_truth: LabelSource) -> list[str]:
    """Ids present in both, in ground-truth order; raises if there are none."""
    pred_ids = set(prediction.ids)
    ids = [i for i in ground_truth.ids if i in pred_ids]
    if not ids:
        raise InputError(f"{prediction.path} and {ground_truth.path} share no image ids")
    return ids


MATCHINGS = ("none", "hungarian")


def hungarian_assignment(confusion: np.ndarray) -> np.ndarray:
    """Class of each predicted cluster: the one-to-one assignment of clusters to ground-truth classes
    that maximises the pixels they share (rows of ``confusion``: classes; columns: clusters, then void)."""
    classes = confusion.shape[0]
    rows, cols = linear_sum_assignment(confusion[:, :classes], maximize=True)
    mapping = np.arange(classes)
    mapping[cols] = rows
    return mapping


def relabelled(panoptic: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """The panoptic map with each class id c replaced by mapping[c] (void and instances kept)."""
    semantic = semantic_of(panoptic)
    void = semantic == IGNORE
    classes = np.where(void, IGNORE, mapping[np.where(void, 0, semantic)]).astype(np.uint8)
    return encode(classes, instance_of(panoptic))


def score(
    prediction: LabelSource, ground_truth: LabelSource, ids: list[str] | None = None, matching: str = "none"
) -> tuple[PanopticStats, np.ndarray | None]:
    """PQ/SQ/RQ/mIoU sums of the prediction over the given (default: shared) image ids, and the class
    each predicted id was mapped to. ``hungarian``: for labels that are clusters, not classes (label-free
    methods); the clusters are first matched one-to-one to the classes over all the images scored."""
    if matching not in MATCHINGS:
        raise InputError(f"unknown matching {matching!r}; expected one of {', '.join(MATCHINGS)}")
    class_set = ground_truth.class_set
    if prediction.class_set.names != class_set.names:
        raise InputError(f"{prediction.path} and {ground_truth.path} use different class sets")
    ids = common_ids(prediction, ground_truth) if ids is None else ids
    mapping = None
    if matching == "hungarian":
        mapping = hungarian_assignment(_score(prediction, ground_truth, ids, None).confusion)
    return _score(prediction, ground_truth, ids, mapping), mapping


def _score(
    prediction: LabelSource, ground_truth: LabelSource, ids: list[str], mapping: np.ndarray | None
) -> PanopticStats:
    class_set = ground_truth.class_set
    stats = PanopticStats(class_set.num_classes)
    for image_id in progress(ids, "scoring"):
        gt, pred = ground_truth.panoptic(image_id), prediction.panoptic(image_id)
        if gt.shape != pred.shape:
            raise InputError(
                f"{prediction.path}: image {image_id} has size {pred.shape[::-1]}, ground truth {gt.shape[::-1]}"
            )
        stats.update(gt, pred if mapping is None else relabelled(pred, mapping), class_set)
    return stats


def scored_ids(
    prediction: LabelSource,
    ground_truth: LabelSource,
    manifest: str | Path | None,
    exclude_annotated: bool = False,
    splits: list[str] | None = None,
) -> list[str] | None:
    """The images to score: all shared ones (None) without a manifest; with one, those of ``splits``
    (all when None), the annotated ones left out if asked (they were trained on)."""
    if manifest is None:
        if exclude_annotated or splits:
            raise InputError(
                "--exclude-annotated and --splits need --manifest (which images are annotated, which split)"
            )
        return None

    entries = {e.image_id: e for e in read_manifest(manifest)}
    shared = common_ids(prediction, ground_truth)
    unknown = [i for i in shared if i not in entries]
    if unknown:
        raise InputError(f"{manifest}: images of {prediction.path} missing from the manifest, e.g. {unknown[:3]}")
    ids = [
        i
        for i in shared
        if not (exclude_annotated and entries[i].annotated) and (not splits or entries[i].split in splits)
    ]
    if not ids:
        raise NothingToScoreError(
            f"{prediction.path}: no images left to score in splits {splits or 'all'}"
            + (
                " without the annotated ones (every labelled image was annotated: to score the pseudo-labels,"
                " annotate fewer than are labelled, e.g. annotation.k)"
                if exclude_annotated
                else ""
            )
        )
    return ids


class NothingToScoreError(InputError):
    """Every image a store could be scored on was trained on (or none has labels): with few labels,
    a run may have nothing left to score its pseudo-labels on."""


def score_video(prediction: VideoLabels, ground_truth: VideoLabels, windows: tuple[int, ...] = (1, 5, 10, 15)) -> dict:
    """STQ (AQ, SQ), VPQ over ``windows`` and identity switches of the prediction's tracks, over
    every frame of the ground truth's sequences (each must be in the prediction)."""
    scores = VideoScores(ground_truth.class_set, tuple(windows))
    sequences = ground_truth.sequences()
    names = [(sequence, name) for sequence, frames in sequences.items() for name in frames]
    for sequence, name in progress(names, "scoring", unit="frame"):
        gt, pred = ground_truth.frame(name), prediction.frame(name)  # a frame missing there names it
        if gt[0].shape != pred[0].shape:
            raise InputError(
                f"{prediction.root}: frame {name} has size {pred[0].shape[::-1]}, ground truth {gt[0].shape[::-1]}"
            )
        scores.update(sequence, gt, pred)
    return {"sequences": len(sequences), **scores.result()}
