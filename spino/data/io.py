"""Reading and writing image and label files, with errors that name the file."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from spino.errors import InputError, MissingFileError, with_path


def read_image(path: str | Path) -> np.ndarray:
    """An RGB image as (H, W, 3) uint8, upright: turned and flipped as its EXIF orientation says, as
    every viewer and labelling tool shows it (phone cameras store the sensor's pixels and a tag)."""
    with _open(path) as im:
        if exif_orientation_of(im) != 1:
            ImageOps.exif_transpose(im, in_place=True)
        return np.array(im.convert("RGB"))


def read_color_label(path: str | Path) -> np.ndarray:
    """A colour-coded label PNG (COCO panoptic segment ids) as (H, W, 3) uint8, its pixels as written."""
    with _open(path) as im:
        return np.array(im.convert("RGB"))


def exif_orientation_of(im: Image.Image) -> int:
    """An opened image's EXIF orientation (1: stored upright; 2-8: stored flipped and/or turned); an
    unreadable EXIF block counts as 1, as browsers take it."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # Pillow raises struct.error, ValueError, SyntaxError... on a malformed EXIF block
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_orientation(path: str | Path) -> int:
    """An image file's EXIF orientation, from its header (see exif_orientation_of)."""
    with _open(path, decode=False) as im:
        return exif_orientation_of(im)


# Pillow's limit against decompression bombs: more pixels than this is refused before decoding.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def describe_orientations(paths: list[str]) -> str | None:
    """A line saying which images carry an EXIF orientation (read upright), or None if none does."""
    turned = [(Path(p).name, o) for p in paths if (o := exif_orientation(p)) != 1]
    if not turned:
        return None
    shown = ", ".join(f"{name} ({o})" for name, o in turned[:5]) + (" ..." if len(turned) > 5 else "")
    return (
        f"{len(turned)} images carry an EXIF orientation, read upright as labelling tools show them "
        f"(their sizes are the upright ones): {shown}"
    )


# EXIF orientations of a quarter turn (with or without a flip): the upright image swaps width and height.
QUARTER_TURNS = (5, 6, 7, 8)


def image_size(path: str | Path, upright: bool = True) -> tuple[int, int]:
    """(H, W) of an image from its header, without decoding the pixels; refused above MAX_PIXELS.
    ``upright``: the size ``read_image`` gives (EXIF orientation applied); false for label files,
    whose pixels are read as written."""
    with _open(path, decode=False) as im:
        if im.width * im.height > MAX_PIXELS:
            raise InputError(
                f"{path}: {im.width}x{im.height} pixels, too large to decode safely (more than {MAX_PIXELS}); downscale it"
            )
        if upright and exif_orientation_of(im) in QUARTER_TURNS:
            return im.width, im.height
        return im.height, im.width


def read_label(path: str | Path) -> np.ndarray:
    """A single-channel label PNG (8 or 16 bit) as an integer array."""
    with _open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16", "I;16B", "1"):
            raise InputError(f"{path}: label images must be single-channel, got mode {im.mode}")
        arr = np.asarray(im)
    return arr.astype(np.int64) if arr.dtype == np.int32 else arr


def _open(path: str | Path, decode: bool = True) -> Image.Image:
    """The opened image (its pixels decoded unless ``decode`` is false); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        im = Image.open(path)
        if decode:
            im.load()
    except Image.DecompressionBombError as err:
        raise InputError(f"{path}: too large to decode safely ({err})") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"{path}: cannot decode image ({err})") from err
    return im


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8/uint16 label or RGB image atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        im = Image.fromarray(array)
    elif array.dtype == np.uint8:
        im = Image.fromarray(array)
    else:
        raise TypeError(f"{path}: can write uint8 or uint16 PNGs, got {array.dtype}")
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


class atomic_path:
    """Context manager yielding a temporary sibling path that is renamed onto ``path`` on success."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should read like any other file
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.chmod(self.tmp, 0o666 & ~_umask())  # again: a writer may have replaced the file (safetensors: 0600)
            os.replace(self.tmp, self.path)
            return
        self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise with_path(exc, self.path) from exc


class atomic_folder:
    """Context manager yielding a temporary sibling folder that becomes ``path`` on success.

    A failure leaves no half-written folder behind. ``path`` must not exist yet (or be an empty
    folder): spino never deletes a folder of the user's.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        if self.path.is_file() or (self.path.is_dir() and any(self.path.iterdir())):
            raise InputError(f"{self.path}: already exists and is not empty; remove it or choose another folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        os.chmod(self.tmp, 0o777 & ~_umask())
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.filename is None:
                raise with_path(exc, self.path) from exc
            return
        if self.path.is_dir():
            self.path.rmdir()  # empty, checked on entry
        os.replace(self.tmp, self.path)


def write_csv(path: str | Path, header: list[str], rows: list) -> None:
    """A CSV written whole (temporary file, then renamed)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_json(path: str | Path, payload: dict) -> None:
    """A JSON file written whole (temporary file, then renamed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def resize_nearest(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer map (pixel centres, as F.interpolate 'nearest-exact')."""
    h, w = label.shape
    ys = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return label[ys[:, None], xs[None, :]]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 image at ``size`` (H, W), bilinearly resized where it differs (mixed cameras)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def check_same_size(image: np.ndarray, label: np.ndarray, image_path: str, label_path: str) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise InputError(
            f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from image "
            f"{image_path} ({image.shape[1]}x{image.shape[0]})"
        )
