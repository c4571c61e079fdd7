"""Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine`` labels.

Classes come from ``*_gtFine_instanceIds.png`` exactly as the official panoptic conversion
(cityscapesscripts' createPanopticImgs) reads them: values >= 1000 are ``labelId * 1000 + k``
instances, smaller values are a label id without instance (a crowd region for thing classes).
Label ids are mapped to the 19 train ids; classes ignored in evaluation become 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import CITYSCAPES_19, ClassSet
from spino.data.base import FixedClassesDataset, Record, train_ids, walk_files
from spino.data.io import read_label
from spino.encoding import LABEL_DIVISOR, encode
from spino.errors import InputError, MissingFileError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
SPLITS_WITHOUT_GT = {"test"}  # Cityscapes test labels are withheld (all zeros)


def decode_gtfine(label_path: str | Path, instance_path: str | Path | None, class_set: ClassSet) -> np.ndarray:
    """Panoptic map from gtFine-style files (instanceIds when present, else labelIds alone)."""
    source = instance_path or label_path
    if instance_path:
        ids = read_label(instance_path).astype(np.int64)
        label_ids = np.where(ids >= LABEL_DIVISOR, ids // LABEL_DIVISOR, ids)
        k = np.where(ids >= LABEL_DIVISOR, ids % LABEL_DIVISOR + 1, 0)
        if k.max(initial=0) >= LABEL_DIVISOR:
            raise InputError(f"{instance_path}: more than {LABEL_DIVISOR - 1} instances of one class")
    else:
        label_ids = read_label(label_path).astype(np.int64)
        k = np.zeros_like(label_ids)
    semantic = train_ids(label_ids, class_set, source)
    thing = class_set.thing_mask()[semantic]
    return encode(semantic, np.where(thing, k, 0))


class Cityscapes(FixedClassesDataset):
    """The Cityscapes directory layout (also used by exports and by prediction folders)."""

    class_set = CITYSCAPES_19

    @classmethod
    def listing(cls, root: Path, splits: list[str] | None) -> list[Path]:
        return walk_files(
            [root / top / split for top in ("leftImg8bit", "gtFine") for split in splits or ["train", "val"]]
        )

    def scan(self) -> list[Record]:
        images_root = self.root / "leftImg8bit"
        if not images_root.is_dir():
            raise MissingFileError(f"{images_root}: not found (expected the Cityscapes leftImg8bit/ folder)")
        records = []
        for split in self.splits:
            split_dir = images_root / split
            if not split_dir.is_dir():
                raise MissingFileError(f"{split_dir}: split folder not found")
            for image in sorted(split_dir.glob(f"*/*{IMAGE_SUFFIX}")):
                stem = image.name[: -len(IMAGE_SUFFIX)]
                label_dir = self.root / "gtFine" / split / image.parent.name
                semantic = label_dir / f"{stem}{LABEL_SUFFIX}"
                instance = label_dir / f"{stem}{INSTANCE_SUFFIX}"
                has_gt = split not in SPLITS_WITHOUT_GT
                if has_gt and not (semantic.is_file() or instance.is_file()):
                    raise MissingFileError(f"{instance}: label file not found for image {image}")
                records.append(
                    Record(
                        stem,
                        split,
                        str(image),
                        str(semantic) if has_gt else "",
                        str(instance) if has_gt and instance.is_file() else "",
                    )
                )
            if not any(r.split == split for r in records):
                raise MissingFileError(f"{split_dir}: no *{IMAGE_SUFFIX} images found")
            self._check_orphans(split, {r.image_id for r in records if r.split == split})
        return records

    def _check_orphans(self, split: str, image_ids: set[str]) -> None:
        """gtFine labels whose leftImg8bit image is missing are a mistake: name them."""
        labels = sorted(self.root.glob(f"gtFine/{split}/*/*{LABEL_SUFFIX}"))
        orphans = [str(p) for p in labels if p.name[: -len(LABEL_SUFFIX)] not in image_ids]
        if orphans:
            more = f" and {len(orphans) - 3} more" if len(orphans) > 3 else ""
            raise InputError(
                f"{orphans[0]}: label without an image in leftImg8bit/{split} ({', '.join(orphans[1:3])}{more})"
            )

    def decode_panoptic(self, record: Record) -> np.ndarray:
        return decode_gtfine(record.semantic, record.instance or None, self.class_set)


def read_gtfine_folder(folder: str | Path, class_set: ClassSet) -> dict[str, Path]:
    """Image id -> instanceIds file of a gtFine-form folder (searched recursively)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: prediction folder not found")
    files = {p.name[: -len(INSTANCE_SUFFIX)]: p for p in sorted(folder.rglob(f"*{INSTANCE_SUFFIX}"))}
    if not files:
        raise MissingFileError(f"{folder}: no *{INSTANCE_SUFFIX} files found")
    return files


def load_gtfine_prediction(instance_file: Path, class_set: ClassSet) -> np.ndarray:
    return decode_gtfine("", instance_file, class_set)
