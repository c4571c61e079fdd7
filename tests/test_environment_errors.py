"""Errors from the machine (a full disk) and from image files the index can judge by their header:
one line naming the path and the problem, nothing half-written left looking complete."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spino.cli import main as spino


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB tmpfs (needs root and mount; skips elsewhere), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Fill the disk up to ``leave`` bytes."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def one_line_naming(
    err: str, command: str, path: Path, problem: str = "no space left on the device (free space or write elsewhere)"
) -> None:
    """stderr holds one error line (besides progress bars), naming a path on the disk and the problem."""
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"spino {command}: error: {path}/"), errors[0]
    assert errors[0].endswith(f": {problem}"), errors[0]


def test_export_into_a_full_disk_ends_with_one_line_and_leaves_nothing(
    gt_store: Path, small_disk: Path, capsys
) -> None:
    fill(small_disk, 16 * 1024)
    capsys.readouterr()
    assert spino(["export", str(gt_store), "--format", "gtfine", "--out", str(small_disk / "gtfine")]) == 1
    one_line_naming(capsys.readouterr().err, "export", small_disk)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no folder, complete or temporary


def test_export_onto_a_read_only_disk_ends_with_one_line(gt_store: Path, small_disk: Path, capsys) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    capsys.readouterr()
    assert spino(["export", str(gt_store), "--format", "coco", "--out", str(small_disk / "coco")]) == 1
    one_line_naming(capsys.readouterr().err, "export", small_disk, "read-only file system (write elsewhere)")
    assert list(small_disk.iterdir()) == []


def test_pseudo_label_shard_into_a_full_disk_ends_with_one_line_and_stays_missing(
    demo_root: Path, small_disk: Path, tmp_path: Path, capsys
) -> None:
    args = ["--dataset-kind", "demo", "--dataset-root", str(demo_root)]
    heads = tmp_path / "heads"
    backbone = '{"name": "tf_efficientnet_lite0", "weights": "none", "out_indices": [1, 2]}'
    assert spino(["index", *args, "--k", "2", "--out", str(tmp_path / "m.csv")]) == 0
    for kind, hidden in (("semantic", [8]), ("boundary", [8])):
        head = json.dumps({"hidden": hidden, "input_size": [64, 128], "epochs": 1, "lr": 0.001})
        assert (
            spino(
                [
                    "train-head",
                    kind,
                    *args,
                    "--manifest",
                    str(tmp_path / "m.csv"),
                    "--head",
                    head,
                    "--backbone",
                    backbone,
                    "--checkpoint",
                    str(heads / f"{kind}.pt"),
                    "--losses",
                    str(heads / f"{kind}.csv"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    store = small_disk / "pseudo_labels.zarr"
    assert (
        spino(
            [
                "create-store",
                *args,
                "--manifest",
                str(tmp_path / "m.csv"),
                "--kind",
                "pseudo_labels",
                "--confidence",
                "--images-per-shard",
                "12",
                "--out",
                str(store),
            ]
        )
        == 0
    )
    fill(small_disk, 4 * 1024)
    capsys.readouterr()
    settings = '{"semantic_scales": [1], "boundary_scales": [1], "min_pixels": 4}'
    done = tmp_path / "0.json"
    assert (
        spino(
            [
                "pseudo-label",
                "--manifest",
                str(tmp_path / "m.csv"),
                "--store",
                str(store),
                "--shard",
                "0",
                "--input",
                f"semantic_head={heads / 'semantic.pt'}",
                "--input",
                f"boundary_head={heads / 'boundary.pt'}",
                "--settings",
                settings,
                "--device",
                "cpu",
                "--done",
                str(done),
            ]
        )
        == 1
    )
    one_line_naming(capsys.readouterr().err, "pseudo-label", small_disk)
    assert not done.exists()
    (small_disk / "filler").unlink()
    assert spino(["info", str(store)]) == 0
    info = capsys.readouterr().out
    assert '"missing_shards": [\n    0\n  ]' in info and '"complete": false' in info


def _folder_dataset(root: Path, image_size: tuple[int, int], label_size: tuple[int, int]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "semantic").mkdir()
    (root / "classes.yaml").write_text("name: two\nclasses:\n  - {name: ground}\n  - {name: car, thing: true}\n")
    Image.fromarray(np.zeros((*image_size, 3), np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.zeros(label_size, np.uint8)).save(root / "semantic" / "a.png")
    return root


def test_index_names_a_label_whose_size_differs_from_its_image(tmp_path: Path, capsys) -> None:
    root = _folder_dataset(tmp_path / "data", (32, 48), (32, 40))
    assert (
        spino(
            [
                "index",
                "--dataset-kind",
                "folder",
                "--dataset-root",
                str(root),
                "--k",
                "1",
                "--out",
                str(tmp_path / "m.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        f"{root / 'semantic' / 'a.png'}: label size 40x32 differs from image {root / 'images' / 'a.png'} (48x32)" in err
    )
    assert not (tmp_path / "m.csv").exists()


def test_index_names_an_image_too_large_to_decode_safely(tmp_path: Path, capsys) -> None:
    root = _folder_dataset(tmp_path / "data", (32, 48), (32, 48))
    header = root / "images" / "a.png"  # a 40000x40000 PNG: its header, and one row of pixels (never decoded)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    header.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    )
    assert (
        spino(
            [
                "index",
                "--dataset-kind",
                "folder",
                "--dataset-root",
                str(root),
                "--k",
                "1",
                "--out",
                str(tmp_path / "m.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spino index: error: {header}: ") and "too large to decode safely" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m.csv").exists()
