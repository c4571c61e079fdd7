"""KITTI-360's 2D semantic/instance layout.

Splits are the frame lists ``data_2d_semantics/train/2013_05_28_drive_<split>_frames.txt``; each
line names an image under ``data_2d_raw/<sequence>/image_00/data_rect/`` and its label under
``data_2d_semantics/train/<sequence>/image_00/semantic/`` (8-bit label ids); the ``instance/``
folder beside it holds 16-bit ``labelId * 1000 + instance`` maps (instance 0: no instance, which
for a thing class is a crowd region). Label ids map to the 14 classes SPINO uses; motorcycle and
bicycle both become two-wheeler, their instances numbered apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import KITTI360_14, ClassSet
from spino.data.base import FixedClassesDataset, Record, train_ids
from spino.data.io import read_label
from spino.encoding import LABEL_DIVISOR, encode
from spino.errors import InputError, MissingFileError

SEMANTICS = Path("data_2d_semantics") / "train"


def frame_list(root: Path, split: str) -> Path:
    return root / SEMANTICS / f"2013_05_28_drive_{split}_frames.txt"


def instance_path(semantic: str) -> str:
    """The instance map beside a semantic label (…/semantic/F.png -> …/instance/F.png)."""
    path = Path(semantic)
    return str(path.parent.parent / "instance" / path.name)


def number_instances(semantic: np.ndarray, segments: np.ndarray, thing: np.ndarray) -> np.ndarray:
    """Instance numbers 1.. per class for the thing pixels of each distinct ``segments`` value (0: none).

    Numbering per (class, segment) keeps instances of label ids merged into one class apart.
    """
    instance = np.zeros(semantic.shape, np.int64)
    mask = thing & (segments > 0)
    keys = semantic[mask].astype(np.int64) << 32 | segments[mask]
    unique, inverse = np.unique(keys, return_inverse=True)
    classes = unique >> 32
    first = np.searchsorted(classes, classes)  # index of each class's first segment in the sorted keys
    numbers = np.arange(len(unique)) - first + 1
    if numbers.size and numbers.max() >= LABEL_DIVISOR:
        raise InputError(f"more than {LABEL_DIVISOR - 1} instances of one class")
    instance[mask] = numbers[inverse.ravel()]
    return instance


def decode_kitti360(semantic_path: str, class_set: ClassSet) -> np.ndarray:
    """Panoptic map of one frame from its semantic label and, beside it, its instance map."""
    label_ids = read_label(semantic_path).astype(np.int64)
    instances = instance_path(semantic_path)
    raw = read_label(instances).astype(np.int64) if Path(instances).is_file() else np.zeros_like(label_ids)
    if raw.shape != label_ids.shape:
        raise InputError(f"{instances}: size {raw.shape[1]}x{raw.shape[0]} differs from its semantic label's")
    semantic = train_ids(label_ids, class_set, semantic_path)
    thing = class_set.thing_mask()[semantic]
    segments = np.where(raw % LABEL_DIVISOR > 0, raw, 0)
    return encode(semantic, number_instances(semantic, segments, thing))


class Kitti360(FixedClassesDataset):
    """Frames of KITTI-360's train/val frame lists with their 2D semantic and instance labels."""

    class_set = KITTI360_14

    @classmethod
    def listing(cls, root: Path, splits: list[str] | None) -> list[Path]:
        return cls.open(root, splits, None).files()

    def scan(self) -> list[Record]:
        records = []
        for split in self.splits:
            listing = frame_list(self.root, split)
            if not listing.is_file():
                raise MissingFileError(
                    f"{listing}: frame list of split {split!r} not found (KITTI-360 has train and val)"
                )
            for number, line in enumerate(listing.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise InputError(f"{listing}:{number}: expected '<image> <semantic label>', got {line!r}")
                image, semantic = (self.root / part for part in parts)
                for path in (image, semantic):
                    if not path.is_file():
                        raise MissingFileError(f"{path}: not found (named in {listing}:{number})")
                image_id = f"{image.parts[-4]}_{image.stem}"  # <sequence>_<frame>
                records.append(Record(image_id, split, str(image), str(semantic), instance_path(str(semantic))))
        return sorted(records, key=lambda r: (r.split, r.image_id))

    def decode_panoptic(self, record: Record) -> np.ndarray:
        return decode_kitti360(record.semantic, self.class_set)

    def files(self) -> list[Path]:
        """The frame lists and every file they name (for the dataset's listing digest)."""
        paths = []
        for split in self.splits:
            listing = frame_list(self.root, split)
            if listing.is_file():
                paths.append(listing)
                for line in listing.read_text().split():
                    paths.append(self.root / line)
                    if "/semantic/" in line:
                        paths.append(Path(instance_path(str(self.root / line))))
        return [p for p in paths if p.is_file()]
