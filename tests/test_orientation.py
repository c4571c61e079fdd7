"""Photos with an EXIF orientation (phone cameras) are read upright everywhere: as every viewer and
labelling tool shows them, so that labels drawn on them fit their pixels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spino.data.io import exif_orientation, image_size, read_image

from helpers import STORED_AS, exif_photo, spino_here

ORIENTATIONS = range(1, 9)


def near(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to JPEG's rounding (quality 100: a few levels), and of the same shape."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 2


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_orientation_is_read_upright_with_its_upright_size(orientation: int, demo_root: Path, tmp_path) -> None:
    upright = read_image(demo_root / "images" / "demo_0000.png")  # 96 x 192: turned, it is 192 x 96
    path = exif_photo(upright, tmp_path / "photo.jpg", orientation)
    stored = np.asarray(Image.open(path))
    assert near(stored, np.ascontiguousarray(STORED_AS[orientation](upright)))  # the file is as a phone writes it
    assert exif_orientation(path) == orientation
    assert near(read_image(path), upright)
    assert image_size(path) == (96, 192)  # from the header alone, upright
    assert image_size(path, upright=False) == stored.shape[:2]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_malformed_exif_block_reads_the_pixels_as_stored(tmp_path: Path) -> None:
    """Browsers show such a photo as stored; spino neither guesses nor fails."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:5, :10] = 255
    Image.fromarray(pixels).save(tmp_path / "x.jpg", quality=100, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00")
    assert exif_orientation(tmp_path / "x.jpg") == 1
    assert read_image(tmp_path / "x.jpg").shape == (20, 40, 3)


def turned_demo(demo_root: Path, out: Path, orientations: dict[str, int]) -> Path:
    """A copy of the demo dataset (folder layout) whose images ``orientations`` names are phone JPEGs
    (stored turned, with the tag), their labels as drawn on the upright image."""
    import shutil

    shutil.copytree(demo_root, out)
    for image_id, orientation in orientations.items():
        png = out / "images" / f"{image_id}.png"
        exif_photo(read_image(png), png.with_suffix(".jpg"), orientation)
        png.unlink()
    return out


def test_index_takes_each_orientation_upright_and_says_how_many_were_turned(demo_root: Path, tmp_path: Path) -> None:
    turns = {f"demo_{i:04d}": o for i, o in zip(range(1, 8), range(2, 9))}  # labelled train images, 2..8
    root = turned_demo(demo_root, tmp_path / "ds", turns)
    result = spino_here(
        "index", "--dataset-kind", "folder", "--dataset-root", str(root), "--k", "2", "--out", str(tmp_path / "m.csv")
    )
    assert result.returncode == 0, result.stderr
    assert "7 images carry an EXIF orientation, read upright" in result.stdout
    assert "demo_0005.jpg (6)" in result.stdout
    with open(tmp_path / "m.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["height"], r["width"]) for r in rows} == {("96", "192")}  # the upright sizes
    assert "working size 192x96 (W x H)" in result.stdout and "resized" not in result.stdout


def test_labels_drawn_on_the_stored_pixels_of_a_turned_photo_are_refused_at_the_index(
    demo_root: Path, tmp_path: Path
) -> None:
    from spino.data.io import read_label, write_png

    root = turned_demo(demo_root, tmp_path / "ds", {"demo_0001": 6})
    for folder in ("semantic", "instances"):  # labels of a tool that ignored the tag: turned like the pixels
        label = root / folder / "demo_0001.png"
        write_png(label, np.ascontiguousarray(np.rot90(read_label(label), 1)))
    result = spino_here(
        "index", "--dataset-kind", "folder", "--dataset-root", str(root), "--k", "2", "--out", str(tmp_path / "m.csv")
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"spino index: error: {root / 'semantic' / 'demo_0001.png'}: label size 96x192 differs from image "
        f"{root / 'images' / 'demo_0001.jpg'} (192x96); the image is stored 96x192 with EXIF orientation 6 and "
        "shown (and read) upright: its labels must be drawn on the upright image"
    )
