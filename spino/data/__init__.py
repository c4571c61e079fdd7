"""Datasets: adapters that list images and decode their ground truth into spino's encoding.

``DATASET_KINDS`` is the one registry of dataset kinds: the config schema's ``dataset.kind``, the
``--dataset-kind`` option and the workflow's listing digest read it. A new kind is a ``Dataset``
subclass (``open``, ``scan``, ``decode_panoptic``, optionally ``listing``) and one registration.
"""

from __future__ import annotations

from pathlib import Path

from spino.data.base import Dataset, Record
from spino.data.cityscapes import Cityscapes
from spino.data.coco import CocoDataset
from spino.data.folder import FolderDataset
from spino.data.kitti360 import Kitti360
from spino.errors import InputError
from spino.registry import Registry

# "demo" is the folder layout that spino.data.synthetic writes (the workflow generates it).
DATASET_KINDS: Registry[type[Dataset]] = Registry("dataset kind", choices="dataset.kind", group="spino.dataset_kinds")
for _name, _cls in [
    ("demo", FolderDataset),
    ("folder", FolderDataset),
    ("cityscapes", Cityscapes),
    ("kitti360", Kitti360),
    ("coco", CocoDataset),
]:
    DATASET_KINDS.register(_name, _cls)


def open_dataset(
    kind: str,
    root: str | Path,
    splits: list[str] | None = None,
    classes: str | None = None,
    things: list[str] | None = None,
) -> Dataset:
    """The adapter of a dataset kind for the dataset at ``root``; ``things`` (config ``dataset.things``)
    says which categories are things, for kinds whose files may not (coco)."""
    cls = DATASET_KINDS.get(kind)
    if things is None:
        return cls.open(Path(root), splits, classes)
    if not cls.takes_things:
        raise InputError(f"dataset.things: a {kind} dataset says which classes are things itself; leave it out")
    return cls.open(Path(root), splits, classes, things=things)


def dataset_files(kind: str, root: str | Path, splits: list[str] | None = None) -> list[Path]:
    """Every file the index of this dataset reads (images, labels, split lists, classes), for its listing digest."""
    return DATASET_KINDS.get(kind).listing(Path(root), splits)


__all__ = ["DATASET_KINDS", "Dataset", "Record", "dataset_files", "open_dataset"]
