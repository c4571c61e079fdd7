"""SOLOv2's instances and the semantic head's logits into one panoptic map: pasted by score
(``fusion: paste``) or fused as EfficientPS does (``fusion: efficientps``)."""

from __future__ import annotations

import torch

from spino.classes import ClassSet
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.errors import InputError


def _numbered(
    panoptic: torch.Tensor, masks: list[torch.Tensor], classes: list[int], scores: list[float]
) -> tuple[torch.Tensor, dict[int, float]]:
    """The masks painted as instances numbered per class in the order given; panoptic id -> score."""
    count: dict[int, int] = {}
    scored = {}
    for mask, cls, score in zip(masks, classes, scores):
        count[cls] = count.get(cls, 0) + 1
        if count[cls] >= LABEL_DIVISOR:
            raise InputError(f"more than {LABEL_DIVISOR - 1} instances of one class")
        panoptic[mask] = cls * LABEL_DIVISOR + count[cls]
        scored[cls * LABEL_DIVISOR + count[cls]] = score
    return panoptic, scored


def _stuff_base(labels: torch.Tensor, class_set: ClassSet) -> torch.Tensor:
    """The semantic argmax's stuff as a panoptic map (thing pixels void until an instance takes them)."""
    thing = torch.as_tensor(class_set.thing_mask()[: class_set.num_classes], device=labels.device)[labels]
    panoptic = labels.long() * LABEL_DIVISOR
    panoptic[thing] = IGNORE_PANOPTIC
    return panoptic


def paste_instances(
    labels: torch.Tensor, instances: dict, class_set: ClassSet, overlap: float
) -> tuple[torch.Tensor, dict[int, float]]:
    """Instances pasted by descending score where no higher-scored one is (an instance whose mask lies
    more than ``overlap`` under those is dropped), stuff from the semantic argmax ``labels`` elsewhere,
    thing pixels no instance takes void."""
    panoptic = _stuff_base(labels, class_set)
    taken = torch.zeros(panoptic.shape, dtype=torch.bool, device=panoptic.device)
    masks, classes, scores = [], [], []
    for mask, cls, score in zip(instances["masks"], instances["classes"].tolist(), instances["scores"].tolist()):
        area = int(mask.sum())
        if area == 0 or int((mask & taken).sum()) / area > overlap:
            continue
        mask = mask & ~taken
        taken |= mask
        masks.append(mask)
        classes.append(cls)
        scores.append(score)
    return _numbered(panoptic, masks, classes, scores)


def fuse_efficientps(
    semantic: torch.Tensor, labels: torch.Tensor, instances: dict, class_set: ClassSet
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
    for k, (m, cls) in enumerate(zip(instances["logits"], instances["classes"].tolist())):
        s = semantic[cls]
        fused = (m.sigmoid() + s.sigmoid()) * (m + s)
        better = (fused > best) & instances["masks"][k]
        best = torch.where(better, fused, best)
        winner[better] = k
    panoptic[winner >= 0] = IGNORE_PANOPTIC  # thing pixels of the semantic map stay void unless an instance wins them
    panoptic[(winner < 0) & stuff[labels]] = labels[(winner < 0) & stuff[labels]].long() * LABEL_DIVISOR
    masks = [winner == k for k in range(len(instances["classes"]))]
    kept = [k for k, m in enumerate(masks) if m.any()]
    classes, scores = instances["classes"].tolist(), instances["scores"].tolist()
    return _numbered(panoptic, [masks[k] for k in kept], [classes[k] for k in kept], [scores[k] for k in kept])
