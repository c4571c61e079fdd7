"""Pictures of panoptic maps: class colours, instance shades and segment borders over the image."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.encoding import instance_of, semantic_of
from spino.errors import InputError


def colorize(panoptic: np.ndarray, class_set: ClassSet, tracks: np.ndarray | None = None) -> np.ndarray:
    """RGB picture: each class in its colour, each thing instance a shade of it, void black; with
    ``tracks`` (a map of track ids, 0 off things), each track in a colour of its own, the same in
    every frame of a video."""
    rgb = class_set.palette()[semantic_of(panoptic)].astype(np.int16)
    inst = instance_of(panoptic).astype(np.int64)
    # Deterministic per-instance shade so neighbouring instances of one class differ visibly.
    shade = ((inst * 37) % 11 - 5) * 12
    shade[inst == 0] = 0
    rgb = np.clip(rgb + shade[..., None], 0, 255).astype(np.uint8)
    if tracks is not None:
        on = tracks != 0
        ids, inverse = np.unique(tracks[on], return_inverse=True)  # the thing pixels only
        rgb[on] = track_colors(ids)[inverse]
    return rgb


def track_colors(ids: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: a saturated colour per track id, consecutive ids far apart in hue (golden ratio)."""
    hsv = [((int(i) * 0.6180339887) % 1.0, 0.8, 0.95) for i in np.asarray(ids).ravel()]
    return (255 * np.array([colorsys.hsv_to_rgb(*c) for c in hsv]).reshape(-1, 3)).astype(np.uint8)


def segment_borders(panoptic: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour belongs to another segment."""
    border = np.zeros(panoptic.shape, dtype=bool)
    border[:, :-1] |= panoptic[:, :-1] != panoptic[:, 1:]
    border[:-1, :] |= panoptic[:-1, :] != panoptic[1:, :]
    return border


def overlay(
    image: np.ndarray | None,
    panoptic: np.ndarray,
    class_set: ClassSet,
    alpha: float = 0.5,
    tracks: np.ndarray | None = None,
) -> np.ndarray:
    """Colourised map (things by track where ``tracks`` is given) blended over the image (or
    alone), with white segment borders."""
    colors = colorize(panoptic, class_set, tracks).astype(np.float32)
    out = colors if image is None else (1 - alpha) * image.astype(np.float32) + alpha * colors
    out[segment_borders(panoptic)] = 255
    return out.astype(np.uint8)


LEGEND_ROW = 16  # pixels per row of the legend strip


def legend(class_set: ClassSet, width: int, classes: list[int] | None = None) -> np.ndarray:
    """A strip naming the class colours (of ``classes``, default all), wrapped to ``width``: the
    swatch, then the name, ``*`` after things (whose instances are shades of the colour)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    palette = class_set.palette()
    entries = []
    for c in range(class_set.num_classes) if classes is None else classes:
        text = class_set.names[c] + ("*" if class_set.thing[c] else "")
        entries.append((c, text, 14 + int(font.getlength(text)) + 10))
    rows, x = [[]], 0
    for entry in entries:
        if x and x + entry[2] > width:
            rows.append([])
            x = 0
        rows[-1].append((x, *entry))
        x += entry[2]
    strip = Image.new("RGB", (width, LEGEND_ROW * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        y = r * LEGEND_ROW
        for x, c, text, _ in row:
            draw.rectangle([x + 2, y + 3, x + 11, y + 12], fill=tuple(int(v) for v in palette[c]), outline=(0, 0, 0))
            draw.text((x + 14, y + 2), text, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def with_legend(picture: np.ndarray, panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """The picture with a legend of the classes present in ``panoptic`` below it."""
    semantic = semantic_of(panoptic)
    present = [int(c) for c in np.unique(semantic) if c < class_set.num_classes]
    return np.concatenate([picture, legend(class_set, picture.shape[1], present)], axis=0)


def panel(image: np.ndarray | None, panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Side by side: image (if any), colourised map, overlay with borders."""
    parts = ([image] if image is not None else []) + [
        colorize(panoptic, class_set),
        overlay(image, panoptic, class_set),
    ]
    return np.concatenate(parts, axis=1)


def store_panel(store, index: int) -> np.ndarray:
    """The panel of one image of a label store (its image when the path it recorded still exists)."""
    if not 0 <= index < store.num_images:
        raise InputError(f"{store.path}: index {index} out of range (0..{store.num_images - 1})")
    paths = store.meta.get("image_paths")
    image = store.read_image(paths[index]) if paths and Path(paths[index]).is_file() else None
    return panel(image, store.panoptic(index), store.class_set)
