"""SOLOv2's instances and the semantic head's logits into one panoptic map: pasted by score
(``fusion: paste``) or fused as EfficientPS does (``fusion: efficientps``)."""

from __future__ import annotations

import torch

from spino.classes import ClassSet
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.errors import InputError
from spino.panoptic.instances.solov2.detection import Detections, Window


def _numbered(
    panoptic: torch.Tensor, pieces: list[tuple[Window, torch.Tensor, int, float]]
) -> tuple[torch.Tensor, dict[int, float]]:
    """Each (window, mask in it, class, score) painted as an instance numbered per class in the order
    given; panoptic id -> score."""
    count: dict[int, int] = {}
    scored = {}
    for window, mask, cls, score in pieces:
        count[cls] = count.get(cls, 0) + 1
        if count[cls] >= LABEL_DIVISOR:
            raise InputError(f"more than {LABEL_DIVISOR - 1} instances of one class")
        panoptic[window][mask] = cls * LABEL_DIVISOR + count[cls]
        scored[cls * LABEL_DIVISOR + count[cls]] = score
    return panoptic, scored


def _stuff_base(labels: torch.Tensor, class_set: ClassSet) -> torch.Tensor:
    """The semantic argmax's stuff as a panoptic map (thing pixels void until an instance takes them)."""
    thing = torch.as_tensor(class_set.thing_mask()[: class_set.num_classes], device=labels.device)[labels]
    panoptic = labels.long() * LABEL_DIVISOR
    panoptic[thing] = IGNORE_PANOPTIC
    return panoptic


def paste_instances(
    labels: torch.Tensor, instances: Detections, class_set: ClassSet, overlap: float
) -> tuple[torch.Tensor, dict[int, float]]:
    """Instances pasted by descending score where no higher-scored one is (an instance whose mask lies
    more than ``overlap`` under those is dropped), stuff from the semantic argmax ``labels`` elsewhere,
    thing pixels no instance takes void."""
    panoptic = _stuff_base(labels, class_set)
    taken = torch.zeros(panoptic.shape, dtype=torch.bool, device=panoptic.device)
    pieces = []
    classes, scores = instances.classes.tolist(), instances.scores.tolist()
    for window, mask, cls, score in zip(instances.windows, instances.masks, classes, scores):
        area, under = int(mask.sum()), taken[window]
        if area == 0 or int((mask & under).sum()) / area > overlap:
            continue
        mask = mask & ~under
        under |= mask  # a view: marks the pixels taken in the whole map
        pieces.append((window, mask, cls, score))
    return _numbered(panoptic, pieces)


def fuse_efficientps(
    semantic: torch.Tensor, labels: torch.Tensor, instances: Detections, class_set: ClassSet
) -> tuple[torch.Tensor, dict[int, float]]:
    """EfficientPS's fusion: each instance's logits m with its class's semantic logits s as
    (sigmoid(m) + sigmoid(s)) * (m + s), then a per-pixel argmax against the stuff logits (``labels``:
    the semantic logits' argmax)."""
    panoptic = _stuff_base(labels, class_set)
    stuff = ~torch.as_tensor(class_set.thing_mask()[: class_set.num_classes], device=semantic.device)
    best = (
        semantic[stuff].max(0).values if stuff.any() else torch.full(labels.shape, -torch.inf, device=semantic.device)
    )
    winner = torch.full(labels.shape, -1, dtype=torch.long, device=semantic.device)
    classes, scores = instances.classes.tolist(), instances.scores.tolist()
    for k, (window, m, mask, cls) in enumerate(zip(instances.windows, instances.logits, instances.masks, classes)):
        s = semantic[cls][window]
        fused = (m.sigmoid() + s.sigmoid()) * (m + s)
        better = (fused > best[window]) & mask
        best[window] = torch.where(better, fused, best[window])
        winner[window][better] = k
    panoptic[winner >= 0] = IGNORE_PANOPTIC  # thing pixels of the semantic map stay void unless an instance wins them
    panoptic[(winner < 0) & stuff[labels]] = labels[(winner < 0) & stuff[labels]].long() * LABEL_DIVISOR
    pieces = [(window, winner[window] == k, classes[k], scores[k]) for k, window in enumerate(instances.windows)]
    return _numbered(panoptic, [piece for piece in pieces if piece[1].any()])
