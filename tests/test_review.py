"""Review rounds: the unlabelled images the teacher doubts most, chosen with diversity, pre-drawn in
CVAT's and Label Studio's import formats that read back as the pseudo-labels they were drawn from."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.manifest import build_manifest, write_manifest
from spino.encoding import LABEL_DIVISOR, semantic_of
from spino.review import Candidate, candidates, choose

from helpers import spino_here, store_from_maps

CAR = DEMO.names.index("car")
ROAD = DEMO.names.index("road")


def review_inputs(demo_root: Path, out: Path, doubts: dict[str, tuple[int, float]]) -> dict:
    """The demo's ground truth as 'pseudo-labels' with confidences: 0.95 everywhere, except the pixels
    of class c in the images ``doubts`` names (image id -> (c, confidence)); a manifest in which the
    demo's train images but the first two are unlabelled (the first two annotated)."""
    ds = open_dataset("demo", demo_root)
    records = ds.scan()
    maps = [ds.read_panoptic(r) for r in records]
    confidences = []
    for record, pan in zip(records, maps):
        confidence = np.full(pan.shape, 0.95, np.float16)
        if record.image_id in doubts:
            cls, value = doubts[record.image_id]
            confidence[semantic_of(pan) == cls] = value
        confidences.append(confidence)
    ids = [r.image_id for r in records]
    store_from_maps(
        out / "pseudo.zarr", ids, maps, DEMO, image_paths=[r.image for r in records], confidences=confidences
    )
    train = [r.image_id for r in records if r.split == "train"]
    unlabelled = [
        type(r)(r.image_id, r.split, r.image) if r.image_id in train[2:] else r for r in records
    ]  # ground truth hidden: what a run without labels for them holds
    write_manifest(out / "m.csv", build_manifest(unlabelled, train[:2]))
    return {"ids": ids, "train": train, "maps": dict(zip(ids, maps))}


def test_doubt_weighs_rare_classes_and_things_and_orders_the_choice(demo_root: Path, tmp_path: Path) -> None:
    """Equally low confidence on the cars of one image and on the road of another: the cars (a rare
    thing class) rank first, then the road, then the confident rest."""
    from spino.store import LabelStore

    doubts = {"demo_0004": (CAR, 0.3), "demo_0005": (ROAD, 0.3)}
    inputs = review_inputs(demo_root, tmp_path, doubts)
    store = LabelStore(tmp_path / "pseudo.zarr")
    found = candidates(store, inputs["train"][2:])
    by_id = {c.image_id: c for c in found}
    confident = by_id["demo_0006"].doubt
    assert confident == pytest.approx(0.05, abs=1e-3)  # 1 - 0.95 whatever the weights
    car_share = (semantic_of(inputs["maps"]["demo_0004"]) == CAR).mean()
    road_share = (semantic_of(inputs["maps"]["demo_0005"]) == ROAD).mean()
    assert car_share < road_share  # the cars cover less of their image than the road of its
    assert by_id["demo_0004"].doubt > by_id["demo_0005"].doubt > confident
    chosen = choose(found, 3)
    assert [c.candidate.image_id for c in chosen][:2] == ["demo_0004", "demo_0005"]


def test_diversity_sends_one_of_two_near_duplicates() -> None:
    found = [Candidate("a", 0.50), Candidate("a-again", 0.49), Candidate("b", 0.30), Candidate("c", 0.10)]
    features = {"a": np.array([1.0, 0, 0]), "a-again": np.array([0.999, 0.045, 0]), "b": np.array([0, 1.0, 0])}
    features["c"] = np.array([0, 0.8, 0.6])
    features["seen"] = np.array([0, 0, 1.0])
    assert [c.candidate.image_id for c in choose(found, 2)] == ["a", "a-again"]  # by doubt alone
    diverse = choose(found, 2, features, annotated=["seen"])
    assert [c.candidate.image_id for c in diverse] == ["a", "b"]
    assert diverse[1].distance == pytest.approx(np.sqrt(2))  # b's distance to a (and to the annotated)


def test_spino_review_writes_a_round_that_reads_back_as_its_pseudo_labels(demo_root: Path, tmp_path: Path) -> None:
    """chosen.csv, review.html, CVAT's COCO 1.0 (read back by spino's COCO reader: the pseudo-labels
    exactly) and Label Studio's tasks (their polygons rasterised back: each segment at IoU >= 0.9)."""
    from pycocotools import mask as coco_mask

    inputs = review_inputs(demo_root, tmp_path, {"demo_0004": (CAR, 0.3), "demo_0005": (ROAD, 0.3)})
    out = tmp_path / "round-1"
    args = ["review", "--manifest", str(tmp_path / "m.csv"), "--pseudo-labels", str(tmp_path / "pseudo.zarr")]
    result = spino_here(*args, "--scored-splits", "val", "--k", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 of 6 unlabelled images chosen for review round 1" in result.stdout
    with open(out / "chosen.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image_id"] for r in rows][:2] == ["demo_0004", "demo_0005"] and rows[0]["rank"] == "0"
    assert float(rows[0]["doubt"]) > float(rows[1]["doubt"]) > float(rows[2]["doubt"])
    page = (out / "review.html").read_text()
    assert page.count("<h3>") == 3 and "demo_0004" in page and (out / "pictures" / "00.png").is_file()

    cvat = open_dataset("coco", out / "cvat", ["default"])  # isthing set: no dataset.things needed
    assert cvat.class_set.names == DEMO.names and cvat.class_set.thing == DEMO.thing
    for record in cvat.scan():
        pan = cvat.read_panoptic(record)
        expected = inputs["maps"][record.image_id]
        assert np.array_equal(semantic_of(pan), semantic_of(expected))
        assert len(np.unique(pan)) >= len(np.unique(expected))  # stuff regions split where disconnected

    tasks = json.loads((out / "label-studio" / "tasks.json").read_text())
    assert [t["data"]["spino_id"] for t in tasks] == [r["image_id"] for r in rows]
    config = (out / "label-studio" / "labeling-config.xml").read_text()
    assert '<Label value="car"' in config and "<PolygonLabels" in config
    task = tasks[0]
    expected = inputs["maps"][task["data"]["spino_id"]]
    h, w = expected.shape
    assert (out / "label-studio" / "images" / Path(task["data"]["image"].split("d=")[1]).name).is_file()
    for pid in np.unique(expected):
        cls, instance = divmod(int(pid), LABEL_DIVISOR)
        if not instance or (expected == pid).sum() < 100:
            continue
        polygons = [
            r["value"]["points"]
            for r in task["predictions"][0]["result"]
            if r["value"]["polygonlabels"] == [DEMO.names[cls]]
        ]
        drawn = [
            coco_mask.decode(coco_mask.frPyObjects([[c for x, y in p for c in (x * w / 100, y * h / 100)]], h, w))[
                ..., 0
            ]
            for p in polygons
        ]
        mask = expected == pid
        best = max((d.astype(bool) & mask).sum() / (d.astype(bool) | mask).sum() for d in drawn)
        assert best >= 0.9, (pid, best)


DATUMARO_READS = """
import json, sys
import datumaro as dm
dataset = dm.Dataset.import_from(sys.argv[1], "coco_instances")
names = [c.name for c in dataset.categories()[dm.AnnotationType.label]]
print(json.dumps({
    item.id: sorted(
        (names[a.label], int(a.image.sum()), a.attributes["confidence"])
        for a in item.annotations if a.type == dm.AnnotationType.mask
    )
    for item in dataset
}))
"""


@pytest.fixture(scope="module")
def datumaro_python() -> str:
    """The python of a venv with Datumaro (CVAT's dataset library; its pins clash with ours, so a venv of
    its own, made once under ~/.cache/spino/venvs); opt-in like the SLURM tests, on in .ci/run."""
    import os
    import subprocess
    import sys

    if os.environ.get("SPINO_TEST_TOOLS") != "1":
        pytest.skip("tests with the labelling tools' own software are opt-in: SPINO_TEST_TOOLS=1 (as .ci/run does)")
    venv = Path.home() / ".cache" / "spino" / "venvs" / "datumaro"
    python = venv / "bin" / "python"
    if not python.is_file():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        installed = made.returncode == 0 and subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "datumaro>=1.10"], capture_output=True, text=True, timeout=900
        )
        if not installed or installed.returncode != 0:
            import shutil

            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"Datumaro could not be installed in {venv}: {(installed and installed.stderr or '')[-300:]}")
    return str(python)


def test_datumaro_imports_the_cvat_export_with_the_same_segments(
    datumaro_python: str, demo_root: Path, tmp_path: Path
) -> None:
    """CVAT imports COCO 1.0 through Datumaro: the round's export reads there with no error, each
    image with exactly spino's segments (class, area) and their confidence attributes."""
    import subprocess

    from spino.commands.review import prelabel
    from spino.prelabels import segments
    from spino.store import LabelStore

    review_inputs(demo_root, tmp_path, {"demo_0004": (CAR, 0.3), "demo_0005": (ROAD, 0.3)})
    out = tmp_path / "round-1"
    args = ["review", "--manifest", str(tmp_path / "m.csv"), "--pseudo-labels", str(tmp_path / "pseudo.zarr")]
    assert spino_here(*args, "--k", "3", "--out", str(out)).returncode == 0
    read = subprocess.run(
        [datumaro_python, "-c", DATUMARO_READS, str(out / "cvat")], capture_output=True, text=True, check=True
    )
    found = json.loads(read.stdout)
    store = LabelStore(tmp_path / "pseudo.zarr")
    assert sorted(found) == sorted(r["image_id"] for r in csv.DictReader(open(out / "chosen.csv")))
    for image_id, segs in found.items():
        label = prelabel(store, image_id, Path(store.meta["image_paths"][store.index_of(image_id)]))
        ours = sorted((DEMO.names[s.class_index], int(s.mask.sum()), round(s.score, 3)) for s in segments(label, DEMO))
        assert [tuple(s) for s in segs] == ours
