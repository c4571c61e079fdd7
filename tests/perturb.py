"""Realistic mistakes to make a prediction from ground truth, for metric tests."""

from __future__ import annotations

import numpy as np

from spino.classes import ClassSet
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR


def perturb(gt: np.ndarray, class_set: ClassSet, rng: np.random.Generator) -> np.ndarray:
    """A prediction with merged, split, dropped, hallucinated and re-classed segments and void holes."""
    pred = gt.copy()
    h, w = gt.shape
    things = [s for s in np.unique(gt) if s % LABEL_DIVISOR and s != IGNORE_PANOPTIC]
    segments = [s for s in np.unique(gt) if s != IGNORE_PANOPTIC]
    # merge: pairs of instances of one class become one
    by_class: dict[int, list[int]] = {}
    for s in things:
        by_class.setdefault(s // LABEL_DIVISOR, []).append(s)
    for ids in by_class.values():
        if len(ids) >= 2 and rng.random() < 0.6:
            a, b = rng.choice(ids, 2, replace=False)
            pred[gt == b] = a
    # split: an instance cut into a left and a right part at a random column
    for s in rng.permutation(things)[: max(1, len(things) // 4)]:
        ys, xs = np.nonzero(gt == s)
        cut = rng.integers(xs.min(), xs.max() + 1)
        new = (s // LABEL_DIVISOR) * LABEL_DIVISOR + 900 + int(rng.integers(0, 99))
        pred[(gt == s) & (np.arange(w)[None, :] >= cut)] = new
    # drop: some segments predicted as void, others swallowed by another class
    for s in rng.permutation(segments)[:2]:
        pred[gt == s] = IGNORE_PANOPTIC
    # swap: a segment predicted as a different class (things stay things with an instance)
    for s in rng.permutation(segments)[:3]:
        cls = s // LABEL_DIVISOR
        same_kind = [c for c in range(class_set.num_classes) if class_set.thing[c] == class_set.thing[cls] and c != cls]
        if same_kind:
            other = int(rng.choice(same_kind))
            pred[gt == s] = other * LABEL_DIVISOR + (s % LABEL_DIVISOR)
    # hallucinate: thing rectangles where there is none
    for k in range(3):
        cls = int(rng.choice(class_set.thing_ids))
        y, x = rng.integers(0, h - h // 8), rng.integers(0, w - w // 8)
        pred[y : y + h // 10, x : x + w // 12] = cls * LABEL_DIVISOR + 950 + k
    # ignore regions: void holes in the prediction, and void pixels of the ground truth predicted as things
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    pred[y : y + h // 6, x : x + w // 6] = IGNORE_PANOPTIC
    void = gt == IGNORE_PANOPTIC
    if void.any():
        pred[void & (np.arange(h)[:, None] % 2 == 0)] = class_set.thing_ids[0] * LABEL_DIVISOR + 999
    return pred
