"""Datasets: adapters that list images and decode their ground truth into spino's encoding."""

from __future__ import annotations

from pathlib import Path

from spino.data.base import Dataset, Record
from spino.data.cityscapes import Cityscapes
from spino.data.folder import FolderDataset

KINDS = ("cityscapes", "folder", "demo")


def open_dataset(kind: str, root: str | Path, splits: list[str] | None = None, classes: str | None = None) -> Dataset:
    """The adapter for a dataset kind ("demo" is the folder layout written by spino.data.synthetic)."""
    if kind == "cityscapes":
        return Cityscapes(root, splits or ["train", "val"])
    if kind in ("folder", "demo"):
        return FolderDataset(root, classes, splits)
    raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")


__all__ = ["Dataset", "Record", "open_dataset", "KINDS"]
