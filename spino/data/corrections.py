"""Corrections taken back into a run (config ``annotation.corrections``).

A review round (``spino review``) sends pre-drawn labels to CVAT or Label Studio; the user corrects
them and exports COCO instances as usual (CVAT: COCO 1.0; Label Studio: COCO). Each export listed in
``annotation.corrections`` is one round, in order (the first export is round 1; the first
annotations are round 0). Its images are found among the run's images by file name (Label Studio's
``<hash>-`` and ``<hash>__`` prefixes and any folder left out); they become annotated, their labels
read from the export, its categories matched to the run's classes by name. What cannot be taken
stops the index in one line naming the export and the image: an image the run does not have, a
class it does not have, an image the tool resized. An image listed without any annotation was not
corrected and stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.data.base import Record
from spino.data.coco import CocoFile, decode_coco_instances
from spino.data.io import image_size
from spino.errors import InputError, MissingFileError

# Label Studio stores an uploaded file as "<8 hex digits>-<name>" and exports it as "<8 hex digits>__<name>".
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}(-|__)")
# Where each tool puts its COCO file inside an export folder: CVAT's COCO 1.0, Label Studio's COCO.
EXPORT_FILES = ("annotations/instances_default.json", "result.json")


def plain_name(name: str) -> str:
    """A file name as the user named it: no folder, no Label Studio upload prefix."""
    return UPLOAD_PREFIX.sub("", Path(name).name)


def export_file(path: str | Path) -> Path:
    """The COCO file of an export: the file itself, or the one a tool writes into an export folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in EXPORT_FILES:
            if (path / name).is_file():
                return path / name
        raise MissingFileError(
            f"annotation.corrections: {path}: no COCO file in the folder (looked for {', '.join(EXPORT_FILES)})"
        )
    raise MissingFileError(f"annotation.corrections: {path}: not found")


def apply_corrections(records: list[Record], exports: list[str], class_set: ClassSet) -> tuple[list[Record], str]:
    """``records`` with each corrected image's record pointing at its export (``round`` set: 1 for the
    first export, ...); a later round's correction of the same image wins. The line says what was taken."""
    by_name: dict[str, list[Record]] = {}
    for r in records:
        by_name.setdefault(plain_name(r.image), []).append(r)
    corrected: dict[str, Record] = {}
    counts = []
    for number, spec in enumerate(exports, 1):
        path = export_file(spec)
        coco = CocoFile(path)
        if coco.panoptic:
            raise InputError(
                f"{path}: a COCO panoptic file; export the corrections as COCO instances (CVAT: COCO 1.0, Label Studio: COCO)"
            )
        names = {c["id"]: c["name"] for c in coco.categories}
        taken = 0
        for coco_id, image in coco.images.items():
            annotations = coco.annotations.get(coco_id)
            if not annotations:
                continue
            record = _record_of(image["file_name"], by_name, path)
            unknown = sorted(
                {names.get(a["category_id"], str(a["category_id"])) for a in annotations} - set(class_set.names)
            )
            if unknown:
                raise InputError(
                    f"{path}: image {image['file_name']!r} has segments of {', '.join(map(repr, unknown))}, not a class "
                    f"of the run ({', '.join(class_set.names)})"
                )
            h, w = image_size(record.image)
            if (int(image["height"]), int(image["width"])) != (h, w):
                raise InputError(
                    f"{path}: image {image['file_name']!r} is {image['width']}x{image['height']} in the export and "
                    f"{w}x{h} in the run ({record.image}): the tool resized it; export the labels at the image's own size"
                )
            corrected[record.image_id] = replace(record, semantic=str(path), instance=f"{path}#{coco_id}", round=number)
            taken += 1
        counts.append(f"round {number}: {taken} images from {path}")
    line = "annotation.corrections: " + "; ".join(counts)
    return [corrected.get(r.image_id, r) for r in records], line


def _record_of(file_name: str, by_name: dict[str, list[Record]], export: Path) -> Record:
    found = by_name.get(plain_name(file_name), [])
    if len(found) == 1:
        return found[0]
    if found:
        raise InputError(
            f"{export}: image {file_name!r} matches several images of the run: {', '.join(r.image for r in found)}"
        )
    raise InputError(
        f"{export}: image {file_name!r} is not an image of the run's dataset (nor of dataset.unlabelled): corrections "
        "are taken for the run's own images, found by file name"
    )


def decode_correction(record: Record, class_set: ClassSet) -> np.ndarray:
    """A corrected image's label from its export, in the run's classes (matched by name)."""
    file, _, coco_id = record.instance.rpartition("#")
    coco = _coco(file)
    key = next(k for k in coco.images if str(k) == coco_id)
    image = coco.images[key]
    index = {name: k for k, name in enumerate(class_set.names)}
    class_of = {c["id"]: index[c["name"]] for c in coco.categories if c["name"] in index}
    shape = (int(image["height"]), int(image["width"]))
    return decode_coco_instances(coco.annotations[key], class_of, class_set, shape, file)


@cache
def _coco(file: str) -> CocoFile:
    return CocoFile(Path(file))
