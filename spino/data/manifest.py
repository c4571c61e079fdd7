"""The manifest: one CSV row per image (id, split, files, ground truth?, annotated?, its size).

It is the first artifact of a run, and every later stage reads its image lists from it, so the
choice of the k annotated images is made once, deterministically, and can be read by a person.

Images may differ in size (mixed cameras, labelling tools that export each image as it came): the
label stores hold every image at one working size, the most common one (``working_size``), or
``dataset.image_size``. Images of another size are resized to it (labels nearest); ``spino
segment`` and the exports work at each image's own size.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from spino.data.base import Dataset, Record
from spino.data.corrections import UPLOAD_PREFIX, plain_name
from spino.data.io import atomic_path, image_size
from spino.errors import InputError, MissingFileError


@dataclass(frozen=True)
class Entry:
    image_id: str
    split: str
    image: str
    semantic: str
    instance: str
    has_gt: bool
    annotated: bool
    height: int
    width: int
    round: int  # the review round its label came from: 0 (the first annotations, or not annotated) or n

    @property
    def record(self) -> Record:
        return Record(self.image_id, self.split, self.image, self.semantic, self.instance, self.round)


COLUMNS = [f.name for f in fields(Entry)]


def choose_annotated(
    records: list[Record],
    split: str,
    indices: list[int] | None = None,
    image_ids: list[str] | None = None,
    k: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Ids of the annotated images: given ids, indices into the sorted candidates, or k drawn with a seed
    (k = 0: none, for label-free pseudo-labels).

    Candidates are the images of ``split`` that have ground truth, sorted by id (for Cityscapes
    this is the order of the sorted ``gtFine/train/*/*_labelIds.png`` list the paper indexes).
    """
    if k == 0:
        return []  # label-free methods (labelgen: primaps): the split need not be labelled
    candidates = sorted(r.image_id for r in records if r.split == split and r.has_gt)
    if not candidates:
        raise InputError(f"no image of split {split!r} has ground truth to annotate from")
    if image_ids is not None:
        return [_labelled_id(given, records, split, candidates) for given in image_ids]
    if indices is not None:
        bad = [i for i in indices if not 0 <= i < len(candidates)]
        if bad:
            raise InputError(
                f"annotated indices {bad} out of range: split {split!r} has {len(candidates)} labelled images"
            )
        return [candidates[i] for i in indices]
    if k is None or not 0 < k <= len(candidates):
        raise InputError(f"k={k} annotated images requested; split {split!r} has {len(candidates)} labelled images")
    chosen = np.random.default_rng(seed).choice(len(candidates), size=k, replace=False)
    return [candidates[i] for i in sorted(chosen)]


def _labelled_id(given: str, records: list[Record], split: str, candidates: list[str]) -> str:
    """The id of the labelled image of ``split`` that ``given`` names: its id, its file name, or its
    name as uploaded to Label Studio (without the prefix Label Studio adds)."""
    if given in candidates:
        return given
    names = {
        r.image_id
        for r in records
        if r.split == split
        and r.has_gt
        and given in (Path(r.image).name, UPLOAD_PREFIX.sub("", r.image_id), plain_name(r.image))
    }
    if len(names) == 1:
        return names.pop()
    if names:
        raise InputError(f"annotation.ids: {given!r} names several labelled {split!r} images: {sorted(names)}")
    raise InputError(
        f"annotation.ids: {given!r} is not a labelled {split!r} image (an id, a file name, or a file name as"
        f" uploaded); the labelled ones: {', '.join(candidates[:8])}{' ...' if len(candidates) > 8 else ''}"
    )


def build_manifest(records: list[Record], annotated: list[str]) -> list[Entry]:
    """One entry per record; annotated: the chosen ids and every corrected image (``round`` > 0)."""
    check_unique_ids(records)
    chosen = set(annotated)
    return [
        Entry(
            r.image_id,
            r.split,
            r.image,
            r.semantic,
            r.instance,
            r.has_gt,
            r.image_id in chosen or r.round > 0,
            *image_size(r.image),
            r.round,
        )
        for r in records
    ]


def check_unique_ids(records: list[Record]) -> None:
    """Image ids (file stems) name images in every artifact: two images of one id are refused, naming
    both files (two folders of a COCO export, or a raw frame beside a labelled one of the same name)."""
    seen: dict[str, Record] = {}
    for r in records:
        other = seen.setdefault(r.image_id, r)
        if other is not r:
            where = f"splits {other.split!r} and {r.split!r}" if other.split != r.split else f"split {r.split!r}"
            raise InputError(
                f"{r.image}: image id {r.image_id!r} (its file name) is already that of {other.image} ({where});"
                " rename one of the two files"
            )


def working_size(entries: list[Entry], override: tuple[int, int] | list[int] | None = None) -> tuple[int, int]:
    """The (H, W) the label stores hold every image at: ``override`` (config ``dataset.image_size``),
    else the most common image size (ties: the larger, then the taller)."""
    if override:
        return int(override[0]), int(override[1])
    if not entries:
        raise InputError("no images, so no working size")
    return most_common_size(Counter((e.height, e.width) for e in entries))


def most_common_size(sizes: Counter) -> tuple[int, int]:
    """The (H, W) most images have (ties: the larger, then the taller): the default working size."""
    return max(sizes, key=lambda s: (sizes[s], s[0] * s[1], s[0]))


def describe_sizes(entries: list[Entry], size: tuple[int, int]) -> str:
    """What the index chose for mixed sizes, in a line: the working size and how many are resized."""
    other = Counter((e.height, e.width) for e in entries if (e.height, e.width) != size)
    text = f"working size {size[1]}x{size[0]} (W x H)"
    if other:
        listed = ", ".join(f"{n} at {w}x{h}" for (h, w), n in other.most_common(5))
        text += f"; {sum(other.values())} images of other sizes are resized to it for the stores ({listed})"
    return text


def check_splits(entries: list[Entry], need_images: list[str], need_labels: list[str]) -> None:
    """Fail at the index, not hours later, when a split a later stage needs is empty or unlabelled."""
    for split in need_images:
        if not any(e.split == split for e in entries):
            raise InputError(
                f"split {split!r} has no images, but the config uses it (splits found: {sorted({e.split for e in entries})})"
            )
    for split in need_labels:
        if not any(e.split == split and e.has_gt for e in entries):
            raise InputError(f"split {split!r} has no labelled images, but the config scores images of it")


def write_manifest(path: str | Path, entries: list[Entry]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for e in entries:
            row = {c: getattr(e, c) for c in COLUMNS}
            row["has_gt"], row["annotated"] = int(e.has_gt), int(e.annotated)
            writer.writerow(row)


def read_manifest(path: str | Path) -> list[Entry]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: manifest not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            raise InputError(f"{path}: expected columns {COLUMNS}, got {reader.fieldnames}")
        return [
            Entry(
                r["image_id"],
                r["split"],
                r["image"],
                r["semantic"],
                r["instance"],
                r["has_gt"] == "1",
                r["annotated"] == "1",
                int(r["height"]),
                int(r["width"]),
                int(r["round"]),
            )
            for r in reader
        ]


def select(entries: list[Entry], splits: list[str] | None = None, with_gt: bool = False) -> list[Entry]:
    """Entries of the given splits (all when None), in manifest order; only labelled ones if with_gt."""
    return [e for e in entries if (splits is None or e.split in splits) and (e.has_gt or not with_gt)]


def describe(entries: list[Entry]) -> str:
    """What the index found: images, labelled ones, the annotated ones and the unlabelled ones."""
    annotated = [e.image_id for e in entries if e.annotated]
    unlabelled = [e.image_id for e in entries if not e.has_gt]
    text = (
        f"{len(entries)} images, {len(entries) - len(unlabelled)} with ground truth, "
        f"{len(annotated)} annotated: {', '.join(annotated)}"
    )
    if unlabelled:
        text += (
            f"\n{len(unlabelled)} images without labels (pseudo-labelled, never scored): "
            f"{', '.join(unlabelled[:20])}" + (" ..." if len(unlabelled) > 20 else "")
        )
    return text


def annotated_samples(dataset: Dataset, manifest: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Image and ground truth of every annotated image of the manifest, the heads' training set."""
    annotated = [e for e in read_manifest(manifest) if e.annotated]
    if not annotated:
        raise InputError(f"{manifest}: no annotated images")
    return [dataset.read_sample(e.record) for e in annotated]
