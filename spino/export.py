"""Panoptic labels in the formats other code reads, Cityscapes gtFine and COCO panoptic: one writer
per format (``LABEL_FORMATS``), which ``spino export`` (a whole store) and ``spino segment`` (map by
map, as frames come) share. A new format is a ``LabelWriter`` subclass and one registration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from spino.classes import ClassSet
from spino.data.cityscapes import INSTANCE_SUFFIX, LABEL_SUFFIX
from spino.data.io import atomic_folder, write_json, write_png
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, instance_of, semantic_of
from spino.registry import Registry

if TYPE_CHECKING:  # the workflow imports this module for its registry at every call; zarr is 0.2 s of it
    from spino.store import LabelStore

TRAIN_SUFFIX = "_gtFine_labelTrainIds.png"
CITYSCAPES_IMAGE_TAG = "_leftImg8bit"  # dropped from an image's name to name its labels, as Cityscapes does


class LabelWriter(ABC):
    """A folder of panoptic maps in one format, written map by map and finished by ``close`` (a
    format with an index file writes it there: a folder without it is incomplete)."""

    def __init__(self, folder: Path, class_set: ClassSet):
        self.folder, self.class_set = folder, class_set

    keeps_segment_ids = False  # whether ``write`` can write the segment ids it is given (track ids)

    @abstractmethod
    def write(self, name: str, panoptic: np.ndarray, segment_ids: dict[int, int] | None = None) -> None:
        """One map (spino encoding) under ``name``: an input's relative path without suffix, or a
        store image's name (``store_name``). ``segment_ids``: the id each panoptic value is written
        as (a video's track ids: the same object the same id in every frame), for formats that
        keep them."""

    def store_name(self, image_id: str) -> str:
        """The name a store's image is written under (by default its id)."""
        return image_id

    def close(self) -> None:
        """Finish the folder (by default nothing is left to write)."""
        return None


LABEL_FORMATS: Registry[type[LabelWriter]] = Registry(
    "label format", choices="segment.format", group="spino.label_formats"
)


def export_store(store: LabelStore, out: str | Path, fmt: str) -> int:
    """``spino export``: every map of a complete store, each at its image's size, in format ``fmt``
    (a temporary folder renamed into place); the number of maps."""
    store.require_complete()
    writer_class = LABEL_FORMATS.get(fmt)
    with atomic_folder(out) as tmp:
        writer = writer_class(tmp, store.class_set)
        for index, image_id in enumerate(store.image_ids):
            writer.write(writer.store_name(image_id), store.panoptic_at_image_size(index))
        writer.close()
    return store.num_images


def to_gtfine(panoptic: np.ndarray, class_set: ClassSet) -> tuple[np.ndarray, np.ndarray]:
    """(labelIds uint8, instanceIds uint16) in the Cityscapes gtFine convention for one map."""
    to_label = np.full(256, class_set.void_label_id, dtype=np.int64)
    to_label[: class_set.num_classes] = class_set.export_label_ids()
    label_ids = to_label[semantic_of(panoptic)]
    inst = instance_of(panoptic).astype(np.int64)
    instance_ids = np.where(inst > 0, label_ids * LABEL_DIVISOR + inst - 1, label_ids)
    return label_ids.astype(np.uint8), instance_ids.astype(np.uint16)


def write_gtfine(folder: Path, image_id: str, panoptic: np.ndarray, class_set: ClassSet) -> None:
    """``<image_id>_gtFine_labelIds.png``, ``_instanceIds.png`` and ``_labelTrainIds.png`` in ``folder``."""
    label_ids, instance_ids = to_gtfine(panoptic, class_set)
    write_png(folder / f"{image_id}{LABEL_SUFFIX}", label_ids)
    write_png(folder / f"{image_id}{INSTANCE_SUFFIX}", instance_ids)
    write_png(folder / f"{image_id}{TRAIN_SUFFIX}", semantic_of(panoptic))


def coco_categories(class_set: ClassSet) -> list[dict]:
    return [
        {"id": i, "name": n, "isthing": int(t), "color": list(c)}
        for i, (n, t, c) in enumerate(zip(class_set.names, class_set.thing, class_set.colors))
    ]


def bounding_boxes(labels: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """(x min, x max, y min, y max) of each label 0..n-1 of a map, from which rows and columns hold
    it: two passes over the map whatever the number of segments."""
    h, w = labels.shape
    rows, cols = np.zeros((n, h), dtype=bool), np.zeros((n, w), dtype=bool)
    rows[labels, np.arange(h)[:, None]] = True
    cols[labels, np.arange(w)[None, :]] = True
    return cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1), rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1)


def to_coco_png(
    panoptic: np.ndarray, class_set: ClassSet, segment_ids: dict[int, int] | None = None
) -> tuple[np.ndarray, list[dict]]:
    """COCO panoptic RGB map (id = R + 256 G + 256^2 B, 0 = void) and its segments_info; segment
    ids 1, 2, ... in order, or ``segment_ids`` of each panoptic value.

    Thing pixels without an instance (crowd regions) are one segment per class with iscrowd=1.
    """
    thing = class_set.thing_mask()
    ids, inverse, areas = np.unique(panoptic, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(panoptic.shape)
    x0, x1, y0, y1 = bounding_boxes(inverse, len(ids))
    segments, seg_ids = [], np.zeros(len(ids), dtype=np.uint32)
    for n, (pid, area) in enumerate(zip(ids.tolist(), areas.tolist())):
        if pid == IGNORE_PANOPTIC:
            continue
        seg_id = len(segments) + 1 if segment_ids is None else segment_ids[pid]
        seg_ids[n] = seg_id
        cls, inst = divmod(pid, LABEL_DIVISOR)
        segments.append(
            {
                "id": seg_id,
                "category_id": cls,
                "area": area,
                "bbox": [int(x0[n]), int(y0[n]), int(x1[n] - x0[n] + 1), int(y1[n] - y0[n] + 1)],
                "iscrowd": int(thing[cls] and inst == 0),
            }
        )
    seg = seg_ids[inverse]
    rgb = np.stack([seg % 256, seg // 256 % 256, seg // 65536 % 256], axis=-1).astype(np.uint8)
    return rgb, segments


@LABEL_FORMATS.register("coco")
class CocoPanoptic(LabelWriter):
    """A COCO panoptic folder: ``panoptic/<name>.png`` per map as it comes, and ``panoptic.json``
    (images, annotations with segments_info, categories) at ``close``. With segment ids (tracking),
    the video layout: each image and annotation also names its ``video_id`` (the name's folder)."""

    keeps_segment_ids = True

    def __init__(self, folder: Path, class_set: ClassSet):
        super().__init__(folder, class_set)
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def write(self, image_id: str, panoptic: np.ndarray, segment_ids: dict[int, int] | None = None) -> None:
        rgb, segments = to_coco_png(panoptic, self.class_set, segment_ids)
        file_name = f"{image_id}.png"
        write_png(self.folder / "panoptic" / file_name, rgb)
        height, width = panoptic.shape
        video = {} if segment_ids is None else {"video_id": str(PurePosixPath(image_id).parent)}
        self.images.append({"id": image_id, "file_name": file_name, "height": height, "width": width, **video})
        self.annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": segments, **video})

    def close(self) -> None:
        payload = {
            "images": self.images,
            "annotations": self.annotations,
            "categories": coco_categories(self.class_set),
        }
        write_json(self.folder / "panoptic.json", payload)


@LABEL_FORMATS.register("gtfine")
class Gtfine(LabelWriter):
    """``<id>_gtFine_labelIds.png``, ``_instanceIds.png`` and ``_labelTrainIds.png`` per map, in the
    name's folder (a trailing ``_leftImg8bit`` of the name dropped, as Cityscapes names its labels)."""

    def write(self, name: str, panoptic: np.ndarray, segment_ids: dict[int, int] | None = None) -> None:
        path = PurePosixPath(name)
        write_gtfine(self.folder / path.parent, path.name.removesuffix(CITYSCAPES_IMAGE_TAG), panoptic, self.class_set)

    def store_name(self, image_id: str) -> str:
        """Cityscapes ids (``<city>_<seq>_<frame>``) go into per-city folders, as gtFine does."""
        if self.class_set.name == "cityscapes-19" and image_id.count("_") == 2:
            return f"{image_id.split('_')[0]}/{image_id}"
        return image_id
