"""Pre-drawn labels in the import formats of the labelling tools users correct them in.

- CVAT: COCO 1.0 (``annotations/instances_default.json`` + ``images/``), one annotation per segment
  (a thing per instance, stuff per connected region) as RLE, its category's ``isthing`` set and the
  segment's mean confidence as a CVAT attribute.
- Label Studio: ``tasks.json`` whose predictions are polygons (one per outer boundary of a segment,
  each with its score; Label Studio's COCO export has dropped brush regions, so polygons are what
  comes back), and ``labeling-config.xml`` with the run's classes and colours.

The polygons are the segments' boundaries as contourpy traces them (filled contours at level 0.5,
holes left out: a hole's own segment is drawn over it, and spino's COCO reader paints smaller
annotations over larger ones).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from spino.classes import ClassSet
from spino.data.io import atomic_path
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR


@dataclass(frozen=True)
class PreLabel:
    """One image to correct: its file, its panoptic label at its own size and the per-pixel confidence."""

    image_id: str
    image: Path
    panoptic: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class Segment:
    mask: np.ndarray
    class_index: int
    score: float


def segments(label: PreLabel, class_set: ClassSet) -> list[Segment]:
    """A thing per instance, stuff per connected region, largest first; each with its mean confidence."""
    from scipy import ndimage

    found = []
    for pid in np.unique(label.panoptic):
        if pid == IGNORE_PANOPTIC:
            continue
        cls, instance = divmod(int(pid), LABEL_DIVISOR)
        mask = label.panoptic == pid
        if class_set.thing[cls] and instance:
            parts = [mask]
        else:
            regions, count = ndimage.label(mask)
            parts = [regions == r for r in range(1, count + 1)]
        found += [Segment(part, cls, float(label.confidence[part].mean())) for part in parts]
    return sorted(found, key=lambda s: -int(s.mask.sum()))


def polygons(mask: np.ndarray) -> list[np.ndarray]:
    """The outer boundaries of a mask as (N, 2) x, y arrays in pixel coordinates (pixel (r, c) covers
    [c, c + 1] x [r, r + 1]), each of at least three points."""
    import contourpy

    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return []
    # traced on the mask's bounding box (a segment is mostly far smaller than its image), then moved back
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    generator = contourpy.contour_generator(z=np.pad(box, 1).astype(np.float32), fill_type="OuterOffset")
    points, offsets = generator.filled(0.5, 1.5)
    shift = np.array([cols[0], rows[0]]) - 0.5
    outers = [p[o[0] : o[1]] + shift for p, o in zip(points, offsets)]
    return [outer[:-1] if np.array_equal(outer[0], outer[-1]) else outer for outer in outers if len(outer) >= 4]


def write_cvat_coco(folder: Path, labels: list[PreLabel], class_set: ClassSet) -> None:
    """CVAT's COCO 1.0 import layout in ``folder`` (see the module docstring)."""
    from pycocotools import mask as coco_mask

    images, annotations = [], []
    for number, label in enumerate(labels, 1):
        shutil.copy(label.image, _copy_target(folder / "images", label.image))
        h, w = label.panoptic.shape
        images.append({"id": number, "file_name": label.image.name, "height": h, "width": w})
        for segment in segments(label, class_set):
            rle = coco_mask.encode(np.asfortranarray(segment.mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": segment.class_index + 1,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                    "area": int(segment.mask.sum()),
                    "bbox": [float(v) for v in coco_mask.toBbox(rle)],
                    "iscrowd": 0,
                    "attributes": {"confidence": round(segment.score, 3)},
                }
            )
    categories = [
        {"id": k + 1, "name": name, "supercategory": "", "isthing": int(thing)}
        for k, (name, thing) in enumerate(zip(class_set.names, class_set.thing))
    ]
    with atomic_path(folder / "annotations" / "instances_default.json") as tmp:
        tmp.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def write_label_studio(folder: Path, labels: list[PreLabel], class_set: ClassSet, model_version: str) -> None:
    """``tasks.json`` with polygon predictions and ``labeling-config.xml`` in ``folder``; the images are
    copied to ``folder/images`` and referred to as Label Studio serves local files
    (``/data/local-files/?d=images/<name>``, with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=``folder``)."""
    tasks = []
    for label in labels:
        shutil.copy(label.image, _copy_target(folder / "images", label.image))
        h, w = label.panoptic.shape
        results = []
        for n, segment in enumerate(segments(label, class_set)):
            for m, outline in enumerate(polygons(segment.mask)):
                results.append(
                    {
                        "id": f"s{n}p{m}",
                        "from_name": "label",
                        "to_name": "image",
                        "type": "polygonlabels",
                        "original_width": w,
                        "original_height": h,
                        "image_rotation": 0,
                        "value": {
                            "points": [[100 * x / w, 100 * y / h] for x, y in outline.tolist()],
                            "closed": True,
                            "polygonlabels": [class_set.names[segment.class_index]],
                        },
                        "score": round(segment.score, 3),
                    }
                )
        score = float(np.mean([r["score"] for r in results])) if results else 0.0
        tasks.append(
            {
                "data": {"image": f"/data/local-files/?d=images/{label.image.name}", "spino_id": label.image_id},
                "predictions": [{"model_version": model_version, "score": round(score, 3), "result": results}],
            }
        )
    with atomic_path(folder / "tasks.json") as tmp:
        tmp.write_text(json.dumps(tasks))
    with atomic_path(folder / "labeling-config.xml") as tmp:
        tmp.write_text(labeling_config(class_set))


def labeling_config(class_set: ClassSet) -> str:
    """Label Studio's labelling interface for the run's classes: polygons over the image."""
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(_hex(color))}/>"
        for name, color in zip(class_set.names, class_set.colors)
    )
    return (
        '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
        f'  <PolygonLabels name="label" toName="image" strokeWidth="2" opacity="0.4">\n{labels}\n'
        "  </PolygonLabels>\n</View>\n"
    )


def _hex(color) -> str:
    r, g, b = (int(c) for c in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def _copy_target(folder: Path, image: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / image.name
