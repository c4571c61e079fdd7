"""Video panoptic labels, frame by frame with track ids, in the two layouts spino reads:

- the video folder layout (``spino make-demo --frames``; users' own sequences):
  ``<root>/semantic/<sequence>/<frame>.png`` (train ids, 255 void) and
  ``<root>/instances/<sequence>/<frame>.png`` (track ids: the same number for the same object in
  every frame of its sequence; 0 off things), ``<root>/classes.yaml``;
- COCO panoptic video (what ``spino segment --track`` writes; VIPSeg's and Cityscapes-VPS's
  layout): ``<root>/panoptic.json`` (annotations with ``segments_info``, categories numbered by the
  class set's train ids) and ``<root>/panoptic/<sequence>/<frame>.png``, the segment id of a thing
  being its track id.

A frame is named ``<sequence>/<frame>`` (its path without suffix); frames are read in name order.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.data.io import read_color_label, read_label
from spino.errors import InputError, MissingFileError

VideoFrame = tuple[np.ndarray, np.ndarray]  # (semantic uint8, track ids uint32)


class VideoLabels:
    """The frames of a folder of video labels, by name, grouped in sequences."""

    def __init__(self, root: str | Path, class_set: ClassSet):
        self.root, self.class_set = Path(root), class_set
        if (self.root / "panoptic.json").is_file():
            self._read = self._coco_frames()
        elif (self.root / "semantic").is_dir():
            self._read = self._folder_frames()
        else:
            raise MissingFileError(
                f"{self.root}: neither panoptic.json (spino segment --track) nor semantic/<sequence>/ (video folder layout)"
            )
        if not self.names:
            raise MissingFileError(f"{self.root}: no frames found")

    def sequences(self) -> dict[str, list[str]]:
        """Frame names by sequence, each sequence's in order."""
        out: dict[str, list[str]] = {}
        for name in sorted(self.names):
            out.setdefault(str(PurePosixPath(name).parent), []).append(name)
        return out

    def frame(self, name: str) -> VideoFrame:
        if name not in self.names:
            raise MissingFileError(f"{self.root}: no frame {name!r}")
        return self._read(name)

    def _folder_frames(self):
        semantic_root = self.root / "semantic"
        self.names = {p.relative_to(semantic_root).with_suffix("").as_posix() for p in semantic_root.rglob("*.png")}

        def read(name: str) -> VideoFrame:
            semantic = read_label(semantic_root / f"{name}.png")
            instances = self.root / "instances" / f"{name}.png"
            if not instances.is_file():
                raise MissingFileError(f"{instances}: not found (every semantic frame needs its track ids)")
            ids = read_label(instances)
            if ids.shape != semantic.shape:
                raise InputError(f"{instances}: size {ids.shape} differs from its semantic map's {semantic.shape}")
            return semantic.astype(np.uint8), ids.astype(np.uint32)

        return read

    def _coco_frames(self):
        index = json.loads((self.root / "panoptic.json").read_text())
        categories = {c["id"]: c for c in index.get("categories", [])}
        names = self.class_set.names
        for cid, c in categories.items():
            if cid >= len(names) or c.get("name", names[cid]) != names[cid]:
                raise InputError(
                    f"{self.root / 'panoptic.json'}: category {cid} ({c.get('name')}) is not class {cid} of {self.class_set.name!r}"
                )
        annotations = {PurePosixPath(a["file_name"]).with_suffix("").as_posix(): a for a in index["annotations"]}
        self.names = set(annotations)
        thing = self.class_set.thing_mask()

        def read(name: str) -> VideoFrame:
            rgb = read_color_label(self.root / "panoptic" / annotations[name]["file_name"]).astype(np.uint32)
            seg = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            infos = annotations[name]["segments_info"]
            table_ids = np.array([0] + [s["id"] for s in infos], np.uint32)
            classes = np.array([IGNORE] + [s["category_id"] for s in infos], np.uint8)
            tracked = np.array(
                [0] + [s["id"] if thing[s["category_id"]] and not s.get("iscrowd") else 0 for s in infos]
            )
            order = np.argsort(table_ids)
            at = np.searchsorted(table_ids[order], seg).clip(max=len(table_ids) - 1)
            known = table_ids[order][at] == seg
            if not known.all():
                raise InputError(
                    f"{self.root / 'panoptic' / annotations[name]['file_name']}: segment ids missing from panoptic.json"
                )
            return classes[order][at], tracked[order][at].astype(np.uint32)

        return read
