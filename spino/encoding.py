"""The one panoptic encoding used by every spino array, store and file.

``panoptic = class_id * LABEL_DIVISOR + instance`` as uint32, where ``class_id`` is a train id of
the class set and ``instance`` is 1..999 for a thing instance. ``instance == 0`` means "no
instance": every stuff pixel, and thing pixels that belong to a crowd region (the Cityscapes
convention for things labelled without instances). Ignore/void pixels have class 255, so their
panoptic value is ``IGNORE_PANOPTIC`` (255000) and ``panoptic // 1000 == 255`` holds for them too.
"""

from __future__ import annotations

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.errors import InputError

LABEL_DIVISOR = 1000
IGNORE_PANOPTIC = IGNORE * LABEL_DIVISOR
PANOPTIC_DTYPE = np.uint32


def encode(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Panoptic map from a semantic map (train ids, 255 ignore) and instance numbers (0 = none)."""
    if semantic.shape != instance.shape:
        raise InputError(f"semantic {semantic.shape} and instance {instance.shape} differ in shape")
    if instance.size and int(instance.max()) >= LABEL_DIVISOR:
        raise InputError(f"instance numbers must be < {LABEL_DIVISOR}, got {int(instance.max())}")
    pan = semantic.astype(PANOPTIC_DTYPE) * LABEL_DIVISOR + instance.astype(PANOPTIC_DTYPE)
    pan[semantic == IGNORE] = IGNORE_PANOPTIC
    return pan


def semantic_of(panoptic: np.ndarray) -> np.ndarray:
    """Train ids (uint8, 255 ignore) of a panoptic map."""
    return (panoptic // LABEL_DIVISOR).astype(np.uint8)


def instance_of(panoptic: np.ndarray) -> np.ndarray:
    """Instance numbers (0 = none) of a panoptic map."""
    return (panoptic % LABEL_DIVISOR).astype(np.uint16)


def check_panoptic(panoptic: np.ndarray, class_set: ClassSet, source: str) -> None:
    """Raise a ValueError naming ``source`` if the map uses a class or instance outside the rules."""
    sem = semantic_of(panoptic)
    bad = np.unique(sem[(sem != IGNORE) & (sem >= class_set.num_classes)])
    if bad.size:
        raise InputError(
            f"{source}: class ids {bad.tolist()} are not in class set {class_set.name!r} "
            f"(0..{class_set.num_classes - 1}, 255 ignore)"
        )
    inst = instance_of(panoptic)
    stuff = ~class_set.thing_mask()[sem]
    if np.any(inst[stuff & (sem != IGNORE)]):
        raise InputError(f"{source}: stuff pixels carry instance numbers")
    if np.any(panoptic[sem == IGNORE] != IGNORE_PANOPTIC):
        raise InputError(f"{source}: ignore pixels carry instance numbers")
