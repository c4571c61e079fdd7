"""A plain folder layout for users' own data (documented in docs/your-data.md).

<root>/classes.yaml            the class set (see spino.classes.load_class_set)
<root>/images/<id>.png|jpg     RGB images
<root>/semantic/<id>.png       uint8 class index per pixel (0..C-1, 255 ignore), optional
<root>/instances/<id>.png      uint8/uint16 instance number per pixel (0 = none), optional
<root>/splits/<split>.txt      image ids of each split, one per line, optional (default: train)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import load_class_set
from spino.data.base import Dataset, Record
from spino.data.io import read_label
from spino.encoding import LABEL_DIVISOR, encode
from spino.errors import InputError, MissingFileError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class FolderDataset(Dataset):
    def __init__(self, root: str | Path, classes: str | Path | None = None, splits: list[str] | None = None):
        self.root = Path(root)
        self.class_set = load_class_set(classes or self.root / "classes.yaml")
        self.splits = splits

    @classmethod
    def open(cls, root: Path, splits: list[str] | None, classes: str | None) -> FolderDataset:
        return cls(root, classes, splits)

    def scan(self) -> list[Record]:
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise MissingFileError(f"{image_dir}: not found (expected <root>/images/ with RGB images)")
        images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise MissingFileError(f"{image_dir}: no .png/.jpg images found")
        split_of = self._splits({p.stem for p in images})
        self._check_orphans({p.stem for p in images})
        records = []
        for image in images:
            semantic = self.root / "semantic" / f"{image.stem}.png"
            instance = self.root / "instances" / f"{image.stem}.png"
            records.append(
                Record(
                    image.stem,
                    split_of.get(image.stem, "train"),
                    str(image),
                    str(semantic) if semantic.is_file() else "",
                    str(instance) if semantic.is_file() and instance.is_file() else "",
                )
            )
        records = [r for r in records if self.splits is None or r.split in self.splits]
        if not records:
            raise MissingFileError(f"{image_dir}: no images in splits {self.splits}")
        return sorted(records, key=lambda r: (r.split, r.image_id))

    def _check_orphans(self, image_ids: set[str]) -> None:
        """Label files whose image is missing are a mistake (a typo, a wrong extension): name them."""
        for folder in ("semantic", "instances"):
            labels = sorted(p.name for p in (self.root / folder).glob("*.png") if p.stem not in image_ids)
            if labels:
                shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
                raise InputError(f"{self.root / folder}: labels without an image in {self.root / 'images'}: {shown}")
        unpaired = sorted(
            p.name for p in (self.root / "instances").glob("*.png") if not (self.root / "semantic" / p.name).is_file()
        )
        if unpaired:
            raise InputError(
                f"{self.root / 'instances'}: instance maps without a semantic map: {', '.join(unpaired[:5])}"
            )

    def _splits(self, ids: set[str]) -> dict[str, str]:
        split_of: dict[str, str] = {}
        for path in sorted((self.root / "splits").glob("*.txt")):
            for line_no, line in enumerate(path.read_text().splitlines(), 1):
                image_id = line.strip()
                if not image_id:
                    continue
                if image_id not in ids:
                    raise InputError(f"{path}:{line_no}: image {image_id!r} not found in {self.root / 'images'}")
                if image_id in split_of:
                    raise InputError(f"{path}:{line_no}: image {image_id!r} is already in split {split_of[image_id]!r}")
                split_of[image_id] = path.stem
        return split_of

    def decode_panoptic(self, record: Record) -> np.ndarray:
        semantic = read_label(record.semantic)
        if semantic.dtype != np.uint8:
            raise InputError(f"{record.semantic}: semantic labels must be 8-bit, got {semantic.dtype}")
        instance = np.zeros(semantic.shape, dtype=np.int64)
        if record.instance:
            instance = read_label(record.instance).astype(np.int64)
            if instance.shape != semantic.shape:
                raise InputError(
                    f"{record.instance}: size {instance.shape[1]}x{instance.shape[0]} differs from "
                    f"{record.semantic} ({semantic.shape[1]}x{semantic.shape[0]})"
                )
        return encode(semantic, _number_per_class(semantic, instance, self.class_set.thing_mask(), record.instance))


def _number_per_class(semantic: np.ndarray, instance: np.ndarray, thing_lut: np.ndarray, source: str) -> np.ndarray:
    """Renumber (class, instance) pairs on thing pixels to 1..n within each class."""
    mask = thing_lut[semantic] & (instance > 0)
    out = np.zeros(semantic.shape, dtype=np.int64)
    if not mask.any():
        return out
    keys = semantic[mask].astype(np.int64) * (1 << 32) + instance[mask]
    uniq, inverse = np.unique(keys, return_inverse=True)
    classes = uniq >> 32
    first_of_class = np.searchsorted(classes, classes)
    rank = np.arange(len(uniq)) - first_of_class + 1
    if rank.max() >= LABEL_DIVISOR:
        raise InputError(f"{source}: more than {LABEL_DIVISOR - 1} instances of one class")
    out[mask] = rank[inverse]
    return out
