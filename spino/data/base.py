"""What every dataset adapter provides: records (ids, paths, splits), images and panoptic targets."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.data.io import QUARTER_TURNS, check_same_size, exif_orientation, image_size, read_image
from spino.encoding import check_panoptic
from spino.errors import InputError


def train_ids(label_ids: np.ndarray, class_set: ClassSet, source: str | Path) -> np.ndarray:
    """A map of the dataset's label ids as train ids (255: ignored); unknown ids raise naming ``source``."""
    lut, known = class_set.label_to_train()
    label_ids = np.clip(label_ids, -1, 255)
    bad = np.unique(label_ids[(label_ids < 0) | ~known[label_ids]])
    if bad.size:
        raise InputError(f"{source}: label ids {bad.tolist()} are not in class set {class_set.name!r}")
    return lut[label_ids]


@dataclass(frozen=True)
class Record:
    """One image of a dataset: its id, split and files (label paths are "" when it has none).
    ``round``: 0, or the review round whose corrected export holds its label (spino.data.corrections)."""

    image_id: str
    split: str
    image: str
    semantic: str = ""
    instance: str = ""
    round: int = 0

    @property
    def has_gt(self) -> bool:
        return bool(self.semantic)


class Dataset(ABC):
    """A dataset adapter. Subclasses find the files and decode their label format."""

    class_set: ClassSet
    takes_things = False  # whether open() takes things= (the thing classes, where the files may not say)

    @classmethod
    @abstractmethod
    def open(cls, root: Path, splits: list[str] | None, classes: str | None) -> Dataset:
        """The adapter for the dataset at ``root`` (config ``dataset``: root, splits, classes)."""

    @classmethod
    def listing(cls, root: Path, splits: list[str] | None) -> list[Path]:
        """Every file the index reads, for the listing digest that reruns the index when one changes;
        missing folders contribute nothing (the index reports them). By default: every file under root."""
        return walk_files([root])

    @abstractmethod
    def scan(self) -> list[Record]:
        """All records, sorted by (split, image id)."""

    @abstractmethod
    def decode_panoptic(self, record: Record) -> np.ndarray:
        """The record's ground truth in spino's panoptic encoding (see spino.encoding)."""

    def label_size(self, record: Record) -> tuple[int, int]:
        """(H, W) of a record's labels, from the label file's header (without decoding it)."""
        return image_size(record.semantic, upright=False)

    def check_sizes(self, records: list[Record]) -> None:
        """Every image's header readable and not too large to decode, and its label files the same
        size (read from their headers): checked at the index, not when a later stage decodes them."""
        for record in records:
            size = image_size(record.image)
            if not record.has_gt or record.round:
                continue  # a correction's size was checked when it was taken (spino.data.corrections)
            label = self.label_size(record)
            instance = Path(record.instance)
            if instance.suffix == ".png" and instance.is_file() and image_size(instance, upright=False) != label:
                h, w = image_size(instance, upright=False)
                raise InputError(f"{instance}: size {w}x{h} differs from {record.semantic} ({label[1]}x{label[0]})")
            if label != size:
                orientation = exif_orientation(record.image)
                turned = (
                    f"; the image is stored {size[0]}x{size[1]} with EXIF orientation {orientation} and shown (and"
                    " read) upright: its labels must be drawn on the upright image"
                    if orientation in QUARTER_TURNS and label == size[::-1]
                    else ""
                )
                raise InputError(
                    f"{record.semantic}: label size {label[1]}x{label[0]} differs from image {record.image} "
                    f"({size[1]}x{size[0]}){turned}"
                )

    def verify(self, records: list[Record], workers: int | None = None) -> None:
        """Decode every image and every label whole, as a later stage will: a truncated JPEG, a
        polygon pycocotools cannot read or a label id outside the class set stops the index, naming
        the file (and annotation), instead of a job after the heads trained. Decoding runs in threads
        (Pillow and pycocotools release the GIL); the first bad record in (split, id) order is named."""
        with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
            for _ in pool.map(self._verify_one, records):
                pass

    def _verify_one(self, record: Record) -> None:
        if record.has_gt:
            self.read_sample(record)
        else:
            self.read_image(record)

    def read_image(self, record: Record) -> np.ndarray:
        return read_image(record.image)

    def read_panoptic(self, record: Record) -> np.ndarray:
        """Ground truth, checked against the class set; raises naming the file if it is wrong."""
        if not record.has_gt:
            raise InputError(f"image {record.image_id} ({record.image}) has no ground truth")
        if record.round:
            from spino.data.corrections import decode_correction

            pan = decode_correction(record, self.class_set)
        else:
            pan = self.decode_panoptic(record)
        check_panoptic(pan, self.class_set, record.semantic)
        return pan

    def read_sample(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        """Image and ground truth, checked to have the same size."""
        image = self.read_image(record)
        pan = self.read_panoptic(record)
        check_same_size(image, pan, record.image, record.semantic)
        return image, pan


class FixedClassesDataset(Dataset):
    """A published dataset layout with its own class set and splits train and val by default."""

    default_splits = ["train", "val"]

    def __init__(self, root: str | Path, splits: list[str]):
        self.root = Path(root)
        self.splits = splits

    @classmethod
    def open(cls, root: Path, splits: list[str] | None, classes: str | None) -> Dataset:
        if classes:
            raise InputError(
                f"dataset.classes: {cls.__name__} datasets have their own class set ({cls.class_set.name})"
            )
        return cls(root, splits or cls.default_splits)


def walk_files(folders: list[Path]) -> list[Path]:
    """The files under ``folders`` (hidden ones left out), in a fixed order."""
    files = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return files
