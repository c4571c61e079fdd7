"""Datasets: adapters that list images and decode their ground truth into spino's encoding."""

from __future__ import annotations

import os
from pathlib import Path

from spino.data.base import Dataset, Record
from spino.data.cityscapes import Cityscapes
from spino.data.folder import FolderDataset
from spino.data.kitti360 import Kitti360
from spino.errors import InputError

KINDS = ("cityscapes", "kitti360", "folder", "demo")


def open_dataset(kind: str, root: str | Path, splits: list[str] | None = None, classes: str | None = None) -> Dataset:
    """The adapter for a dataset kind ("demo" is the folder layout written by spino.data.synthetic)."""
    if kind == "cityscapes":
        return Cityscapes(root, splits or ["train", "val"])
    if kind == "kitti360":
        return Kitti360(root, splits or ["train", "val"])
    if kind in ("folder", "demo"):
        return FolderDataset(root, classes, splits)
    raise InputError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")


def dataset_files(kind: str, root: str | Path, splits: list[str] | None = None) -> list[Path]:
    """Every file the index of this dataset reads (images, labels, split lists, classes), for its listing digest.

    Missing folders simply contribute nothing: the index itself reports them.
    """
    root = Path(root)
    if kind == "kitti360":
        return Kitti360(root, splits or ["train", "val"]).files()
    if kind == "cityscapes":
        folders = [root / top / split for top in ("leftImg8bit", "gtFine") for split in splits or ["train", "val"]]
    else:
        folders = [root]
    files = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return files


__all__ = ["Dataset", "Record", "open_dataset", "dataset_files", "KINDS"]
