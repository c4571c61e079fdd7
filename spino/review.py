"""Which unlabelled images a correction would help most: review rounds (``spino review``).

Correcting a pre-drawn label costs a fraction of drawing one, so each round sends the images where
the teacher doubts, pre-drawn. Each unlabelled image gets terms, each in 0..1:

- ``doubt``: the pseudo-labels' mean (1 - confidence), each pixel weighted by how rare its class is
  among the run's pseudo-labels (sqrt of inverse frequency, within 0.5..4) and twice for things:
  a doubtful car is worth more than doubtful road;
- ``margin``: where the store has runner-up classes (``pseudo_labels.top2``), the same mean of
  1 - (p1 - p2): two classes nearly tied;
- ``disagreement``: where the panoptic model predicted the image, the share of pixels whose class
  it gives differently from its teacher.

Each term is turned into its rank among the candidates (0..1) and the ranks averaged: terms of
different scales weigh alike. Then diversity: images are chosen one at a time, each the best score
discounted by its nearness (descriptor distance, ``features.h5``) to the images already annotated
or chosen, so ten near-duplicate frames of one doubtful scene are not all sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spino.data.manifest import Entry
from spino.encoding import semantic_of
from spino.store import LabelStore

THING_WEIGHT = 2.0
RARITY_RANGE = (0.5, 4.0)


@dataclass(frozen=True)
class Candidate:
    """One unlabelled image and its terms (None where the run has nothing to say it from)."""

    image_id: str
    doubt: float
    margin: float | None = None
    disagreement: float | None = None


@dataclass(frozen=True)
class Choice:
    """A chosen image: its rank in the round, combined score, the distance discount, and its terms."""

    rank: int
    score: float
    distance: float | None
    candidate: Candidate


def reviewable(entries: list[Entry], scored_splits: list[str]) -> list[str]:
    """Ids of the images a correction can add: not annotated, and not the labelled images of the splits
    that score the run (their labels are the measure). With ground truth for every image (a benchmark),
    the others stand for unlabelled ones."""
    return [e.image_id for e in entries if not e.annotated and not (e.has_gt and e.split in scored_splits)]


def rarity_weights(counts: np.ndarray, thing: tuple[bool, ...]) -> np.ndarray:
    """Per class (and void, last), from the pixels of each class among the candidates' pseudo-labels
    (``counts``, void last): sqrt(mean frequency / the class's frequency), within RARITY_RANGE, doubled
    for thing classes."""
    classes = len(thing)
    frequency = counts[:classes] / max(counts[:classes].sum(), 1)
    with np.errstate(divide="ignore"):
        weights = np.sqrt(np.where(frequency > 0, (1 / classes) / frequency, RARITY_RANGE[1] ** 2))
    weights = np.clip(weights, *RARITY_RANGE) * np.where(thing, THING_WEIGHT, 1.0)
    return np.append(weights, 1.0)  # void


def candidates(pseudo: LabelStore, image_ids: list[str], predictions: LabelStore | None = None) -> list[Candidate]:
    """The terms of each image of ``image_ids`` (the pseudo-label store must hold confidences). Each
    image is read once: its per-class pixel counts and sums of 1 - confidence (and of 1 - margin) are
    kept, and weighted by the classes' rarity once every image is counted."""
    classes = pseudo.class_set.num_classes
    predicted = set(predictions.image_ids) if predictions is not None else set()
    counts, doubts, margins, disagreements = [], [], [], []
    for image_id in image_ids:
        i = pseudo.index_of(image_id)
        semantic = semantic_of(pseudo.panoptic(i))
        bins = np.minimum(semantic, classes).ravel()  # void last
        confidence = pseudo.confidence(i).astype(np.float32).ravel()
        counts.append(np.bincount(bins, minlength=classes + 1))
        doubts.append(np.bincount(bins, 1 - confidence, minlength=classes + 1))
        if pseudo.has_runner_up:
            second = pseudo.runner_up(i)[1].ravel()
            margins.append(np.bincount(bins, 1 - (confidence - second), minlength=classes + 1))
        other = semantic_of(predictions.panoptic(predictions.index_of(image_id))) if image_id in predicted else None
        disagreements.append(None if other is None else float((other != semantic).mean()))
    weights = rarity_weights(np.sum(counts, axis=0), pseudo.class_set.thing)
    found = []
    for n, image_id in enumerate(image_ids):
        total = weights @ counts[n]
        margin = float(weights @ margins[n] / total) if margins else None
        found.append(Candidate(image_id, float(weights @ doubts[n] / total), margin, disagreements[n]))
    return found


def scores(found: list[Candidate]) -> np.ndarray:
    """Each candidate's combined score: the mean over its terms of the term's rank (0: lowest, 1:
    highest among the candidates that have it)."""
    total, count = np.zeros(len(found)), np.zeros(len(found))
    for term in ("doubt", "margin", "disagreement"):
        have = [n for n, c in enumerate(found) if getattr(c, term) is not None]
        if len(have) < 2:
            continue
        values = np.array([getattr(found[n], term) for n in have])
        ranks = values.argsort(kind="stable").argsort(kind="stable") / (len(have) - 1)
        total[have] += ranks
        count[have] += 1
    return np.divide(total, count, out=np.zeros(len(found)), where=count > 0)


def choose(
    found: list[Candidate],
    k: int,
    features: dict[str, np.ndarray] | None = None,
    annotated: list[str] | tuple = (),
) -> list[Choice]:
    """``k`` candidates, one at a time: the highest score times d / (d + median d), d the descriptor
    distance to the nearest image annotated or already chosen (without descriptors: by score)."""
    score = scores(found)
    if not features:
        order = np.argsort(-score, kind="stable")[:k]
        return [Choice(r, float(score[n]), None, found[n]) for r, n in enumerate(order)]
    vectors = np.stack([features[c.image_id] for c in found])
    near = np.full(len(found), np.inf)
    for image_id in annotated:
        if image_id in features:
            near = np.minimum(near, np.linalg.norm(vectors - features[image_id], axis=1))
    chosen: list[Choice] = []
    left = np.ones(len(found), bool)
    for rank in range(min(k, len(found))):
        finite = near[left & np.isfinite(near)]
        scale = float(np.median(finite)) if finite.size else 1.0
        discount = np.where(np.isfinite(near), near / (near + max(scale, 1e-9)), 1.0)
        gain = np.where(left, (score + 1e-6) * discount, -np.inf)
        n = int(gain.argmax())
        chosen.append(Choice(rank, float(score[n]), float(near[n]), found[n]))
        left[n] = False
        near = np.minimum(near, np.linalg.norm(vectors - vectors[n], axis=1))
    return chosen
