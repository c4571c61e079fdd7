"""COCO datasets (``dataset.kind: coco``): COCO panoptic or COCO instances, as CVAT, Label Studio and
Roboflow export a labelling job.

Layout, per split (the first annotation file found is used)::

    <root>/annotations/panoptic_<split>.json  COCO panoptic, PNGs in annotations/panoptic_<split>/
    <root>/annotations/instances_<split>.json COCO instances (polygons or RLE, decoded by pycocotools)
    <root>/annotations/<split>.json           either of the two (told apart by ``segments_info``)
    <root>/<split>/_annotations.coco.json     Roboflow's export, images beside it
    <root>/<split>.json                       e.g. Label Studio's result.json (split "result")
    images: <root>/images/<split>/, <root>/<split>/, <root>/images/ or beside the JSON; a
    file_name may also be relative to the JSON's folder (Label Studio's "images/<name>")

The class set comes from the categories, in their order, and must be the same in every split;
which are things, from each category's ``isthing`` or, where the categories lack it (instance
files usually do), from ``dataset.things``. ``iscrowd`` regions are
crowd (a thing class without instance). Images with no annotation (listed without segments, or
present in the image folder but not in the JSON) are unlabelled: pseudo-labelled, never scored.
Pixels no annotation covers are void.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.data.base import Dataset, Record
from spino.data.folder import IMAGE_EXTENSIONS
from spino.data.io import read_color_label
from spino.encoding import encode
from spino.errors import InputError, MissingFileError

ANNOTATION_FILES = (
    "annotations/panoptic_{split}.json",
    "annotations/instances_{split}.json",
    "annotations/{split}.json",
    "{split}/_annotations.coco.json",
    "{split}.json",
)
IMAGE_FOLDERS = ("images/{split}", "{split}", "images")


class CocoFile:
    """One COCO JSON: its categories, images and each image's annotations."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = json.loads(path.read_text())
            self.categories = list(data["categories"])
            self.images = {image["id"]: image for image in data["images"]}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not a COCO file with images and categories ({err})") from err
        self.panoptic = "segments_info" in (data.get("annotations") or [{}])[0]
        self.annotations: dict = {}
        for ann in data.get("annotations", []):
            if self.panoptic:
                self.annotations[ann["image_id"]] = ann
            else:
                self.annotations.setdefault(ann["image_id"], []).append(ann)
        orphans = sorted(set(self.annotations) - set(self.images), key=str)
        if orphans:
            first = self.annotations[orphans[0]]
            ann_id = first.get("file_name") if self.panoptic else first[0].get("id")
            raise InputError(
                f"{path}: annotations of images the file does not list (image ids {orphans[:5]}"
                f"{' ...' if len(orphans) > 5 else ''}; e.g. annotation {ann_id}): an image entry is missing from 'images'"
            )

    def class_set(self, name: str, things: list[str] | None = None) -> ClassSet:
        """The categories as classes. Which are things: ``things`` (config ``dataset.things``) where
        given, else each category's ``isthing``; a category without it is an error, never a guess
        (labelling tools leave it out, and a car taken for stuff would silently lose its instances)."""
        names = [c["name"] for c in self.categories]
        if things is not None:
            unknown = sorted(set(things) - set(names))
            if unknown:
                raise InputError(f"dataset.things: {unknown} are not categories of {self.path} ({', '.join(names)})")
            thing = [n in things for n in names]
        else:
            undecided = [c["name"] for c in self.categories if "isthing" not in c]
            if undecided:
                raise InputError(
                    f"{self.path}: categories without isthing: {', '.join(undecided)}; set dataset.things to the "
                    "names of the countable ones (e.g. things: [car, person]), the others are stuff (spino init "
                    "writes this choice for you to confirm)"
                )
            thing = [bool(c["isthing"]) for c in self.categories]
        classes = [
            {"name": c["name"], "thing": t, **({"color": c["color"]} if "color" in c else {})}
            for c, t in zip(self.categories, thing)
        ]
        return ClassSet.from_dict({"name": name, "classes": classes}, source=str(self.path))

    def class_of(self) -> dict[int, int]:
        """COCO category id -> class index."""
        return {c["id"]: k for k, c in enumerate(self.categories)}


class CocoDataset(Dataset):
    takes_things = True

    def __init__(self, root: str | Path, splits: list[str], things: list[str] | None = None):
        self.root = Path(root)
        self.splits = splits
        files = {split: self._annotation_file(split) for split in splits}
        self.files = {split: CocoFile(path) for split, path in files.items()}
        first = next(iter(self.files.values()))
        self.class_set = first.class_set(f"coco:{self.root.name}", things)
        for coco in self.files.values():
            if [c["name"] for c in coco.categories] != [c["name"] for c in first.categories]:
                raise InputError(
                    f"{coco.path}: categories differ from those of {first.path}; every split needs the same"
                )

    @classmethod
    def open(
        cls, root: Path, splits: list[str] | None, classes: str | None, things: list[str] | None = None
    ) -> CocoDataset:
        if classes:
            raise InputError(f"dataset.classes: a coco dataset takes its classes from the categories of {root}")
        return cls(root, splits or ["train", "val"], things)

    def _annotation_file(self, split: str) -> Path:
        candidates = [self.root / name.format(split=split) for name in ANNOTATION_FILES]
        for path in candidates:
            if path.is_file():
                return path
        raise MissingFileError(
            f"{self.root}: no COCO annotation file of split {split!r} (looked for {', '.join(map(str, candidates))})"
        )

    def _image_folder(self, split: str) -> Path:
        candidates = [self.root / name.format(split=split) for name in IMAGE_FOLDERS] + [self.files[split].path.parent]
        for folder in candidates:
            if folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
                return folder
        raise MissingFileError(
            f"{self.root}: no image folder of split {split!r} (looked in {', '.join(map(str, candidates))})"
        )

    def scan(self) -> list[Record]:
        records = []
        for split, coco in self.files.items():
            folder = self._image_folder(split)
            listed = set()
            for coco_id, image in coco.images.items():
                # in the image folder, or relative to the JSON's folder (Label Studio's "images/x.jpg")
                candidates = [folder / image["file_name"], coco.path.parent / image["file_name"]]
                path = next((p for p in candidates if p.is_file()), None)
                if path is None:
                    raise MissingFileError(f"{candidates[0]}: image {image['file_name']!r} of {coco.path} not found")
                listed.add(path.resolve())
                labelled = bool(coco.annotations.get(coco_id)) and (
                    not coco.panoptic or self._png(split, coco_id).is_file()
                )
                label = str(self._png(split, coco_id) if coco.panoptic else coco.path) if labelled else ""
                records.append(Record(path.stem, split, str(path), label, f"{coco.path}#{coco_id}" if labelled else ""))
            unlisted = [
                p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.resolve() not in listed
            ]
            records += [Record(p.stem, split, str(p)) for p in sorted(unlisted)]
        return sorted(records, key=lambda r: (r.split, r.image_id))

    def _png(self, split: str, coco_id) -> Path:
        coco = self.files[split]
        name = coco.annotations[coco_id]["file_name"]
        for folder in (coco.path.parent / coco.path.stem, coco.path.parent / "panoptic"):
            if (folder / name).is_file():
                return folder / name
        return coco.path.parent / coco.path.stem / name

    @cached_property
    def _by_file(self) -> dict[str, CocoFile]:
        return {str(coco.path): coco for coco in self.files.values()}

    def _entry(self, record: Record) -> tuple[CocoFile, object, tuple[int, int]]:
        """The record's COCO file, its image id there and the size the annotations are for."""
        file, _, coco_id = record.instance.rpartition("#")
        coco = self._by_file[file]
        key = next(k for k in coco.images if str(k) == coco_id)
        return coco, key, (int(coco.images[key]["height"]), int(coco.images[key]["width"]))

    def label_size(self, record: Record) -> tuple[int, int]:
        return self._entry(record)[2]

    def decode_panoptic(self, record: Record) -> np.ndarray:
        coco, key, shape = self._entry(record)
        if coco.panoptic:
            return decode_coco_panoptic(
                record.semantic, coco.annotations[key]["segments_info"], coco.class_of(), self.class_set, shape
            )
        return decode_coco_instances(coco.annotations[key], coco.class_of(), self.class_set, shape, str(coco.path))


def _numbered(
    semantic: np.ndarray, instance: np.ndarray, segments: list[tuple[np.ndarray, int, bool]], class_set: ClassSet
) -> np.ndarray:
    """Paint (mask, class, crowd) segments in order; thing instances numbered 1.. per class."""
    count = np.zeros(class_set.num_classes, np.int64)
    for mask, cls, crowd in segments:
        semantic[mask] = cls
        if class_set.thing[cls] and not crowd:
            count[cls] += 1
            instance[mask] = count[cls]
        else:
            instance[mask] = 0
    return encode(semantic, instance)


def decode_coco_panoptic(
    png: str, segments_info: list[dict], class_of: dict[int, int], class_set: ClassSet, shape: tuple[int, int]
) -> np.ndarray:
    """A COCO panoptic PNG (segment id = R + 256 G + 256^2 B) in spino's encoding."""
    rgb = read_color_label(png).astype(np.int64)
    if rgb.shape[:2] != shape:
        raise InputError(f"{png}: size {rgb.shape[1]}x{rgb.shape[0]} differs from its image's {shape[1]}x{shape[0]}")
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    segments = []
    for seg in segments_info:
        if seg["category_id"] not in class_of:
            raise InputError(
                f"{png}: segment {seg['id']} has category {seg['category_id']}, which is not among the categories"
            )
        segments.append((ids == seg["id"], class_of[seg["category_id"]], bool(seg.get("iscrowd", 0))))
    return _numbered(np.full(shape, 255, np.uint8), np.zeros(shape, np.uint16), segments, class_set)


def _rle(segmentation, h: int, w: int, coco_mask) -> dict:
    """A segmentation (polygons, RLE or uncompressed RLE) as compressed RLE; malformed ones refused."""
    if isinstance(segmentation, list):  # polygons: [x1, y1, x2, y2, ...] each, at least 3 points
        bad = [p for p in segmentation if not isinstance(p, list) or len(p) < 6 or len(p) % 2]
        if not segmentation or bad:
            sizes = [len(p) if isinstance(p, list) else type(p).__name__ for p in bad] or [0]
            raise InputError(f"polygon of {sizes[0]} coordinates (a polygon needs at least 3 x, y points)")
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, h, w))
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise InputError("segmentation is neither polygons nor RLE ({'size', 'counts'})")
    if isinstance(segmentation["counts"], list):  # uncompressed RLE
        return coco_mask.frPyObjects(segmentation, h, w)
    counts = segmentation["counts"]
    return {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


def decode_coco_instances(
    annotations: list[dict], class_of: dict[int, int], class_set: ClassSet, shape: tuple[int, int], source: str
) -> np.ndarray:
    """COCO instance annotations (polygons, RLE or uncompressed RLE) painted largest first, so that
    a smaller object lying on a larger one stays visible."""
    from pycocotools import mask as coco_mask

    h, w = shape
    segments = []
    for ann in annotations:
        if ann["category_id"] not in class_of:
            raise InputError(
                f"{source}: annotation {ann.get('id')} has category {ann['category_id']}, which is not among the categories"
            )
        where = f"{source}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        try:
            rle = _rle(ann.get("segmentation"), h, w, coco_mask)
            size = list(rle["size"])
            mask = coco_mask.decode(rle).astype(bool) if size == [h, w] else None
        except InputError as err:
            raise InputError(f"{where}: {err}") from err
        except Exception as err:  # pycocotools raises TypeError, ValueError or a bare Exception on malformed input
            raise InputError(f"{where}: cannot decode its segmentation ({type(err).__name__}: {err})") from err
        if mask is None:
            raise InputError(f"{where} is {size[1]}x{size[0]}, its image {w}x{h}")
        segments.append((int(mask.sum()), mask, class_of[ann["category_id"]], bool(ann.get("iscrowd", 0))))
    segments.sort(key=lambda s: -s[0])
    return _numbered(np.full(shape, 255, np.uint8), np.zeros(shape, np.uint16), [s[1:] for s in segments], class_set)
