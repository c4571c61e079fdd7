"""The Snakemake workflow on the tiny demo as a whole: all stages, then nothing to do; a moved
checkout plans nothing and an edited helper reruns its rules; the README's store tools on a finished
run; a CVAT export of ten labelled images from `spino init` to the end. Each stage's own tests:
test_workflow_plan.py, test_workflow_labels.py, test_workflow_panoptic.py, test_workflow_outputs.py."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from spino.store import LabelStore

from helpers import REPO, TINY, copy_of, planned_rules, snakemake

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("on_the_cpu")]


def test_workflow_runs_all_stages_and_then_has_nothing_to_do(finished_run: Path) -> None:
    results = finished_run / "results" / "tiny"
    scores = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]
    assert scores["images"] == 7  # 9 images, the 2 annotated left out
    # measured: PQ 0.029 (stuff 0.036), mIoU 0.194; chance mIoU is ~0.07 for 7 classes
    assert scores["all"]["pq"] >= 0.02 and scores["stuff"]["pq"] >= 0.025 and scores["miou"] >= 0.17
    assert json.loads((results / "pseudo_labels.complete.json").read_text())["complete"]
    # stores.images_per_shard, a size per store: 9 images 4 to a shard; the 3 val predictions 2 to a shard
    assert len(list((results / "pseudo_labels.shards").glob("*.json"))) == 3
    assert len(list((results / "ground_truth.shards").glob("*.json"))) == 3
    assert sorted(p.name for p in (results / "predictions.shards").glob("*.json")) == ["0.json", "1.json"]
    assert LabelStore(results / "predictions.zarr").images_per_shard == 2
    assert (finished_run / "logs" / "tiny" / "pseudo_label" / "0.log").is_file()
    model_scores = json.loads((results / "scores" / "predictions.json").read_text())["summary"]
    assert model_scores["images"] == 3  # the val images; 6 steps train no useful model, so: the model's own pixels
    assert model_scores["miou"] == pytest.approx(
        miou_counted(results / "predictions.zarr", results / "ground_truth.zarr"), abs=1e-9
    )
    assert "no GPU: training on the CPU" in (finished_run / "logs" / "tiny" / "train_panoptic.log").read_text()
    page = (results / "report" / "report.html").read_text()
    assert "pseudo-labels" in page and "panoptic model" in page and 'src="gallery.png"' in page
    again = snakemake(finished_run, TINY, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def miou_counted(prediction: Path, ground_truth: Path) -> float:
    """mIoU of a store's images against the ground-truth store, counted here from their pixels."""
    from spino.encoding import semantic_of

    from helpers import class_ious

    pred, gt = LabelStore(prediction), LabelStore(ground_truth)
    p = np.stack([semantic_of(pred.panoptic(i)) for i in range(pred.num_images)])
    g = np.stack([semantic_of(gt.panoptic(gt.index_of(image_id))) for image_id in pred.image_ids])
    return float(np.mean([iou for iou in class_ious(p, g, gt.class_set.num_classes) if iou is not None]))


def test_moved_checkout_plans_nothing_and_an_edited_helper_reruns_its_rules(finished_run: Path, tmp_path: Path) -> None:
    clone = tmp_path / "elsewhere" / "spino-clone"
    shutil.copytree(
        REPO,
        clone,
        ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info"),
    )
    # the clone's Snakefile and spino package (PYTHONPATH), as a fresh install of the clone would have them
    moved = snakemake(finished_run, TINY, "-n", snakefile=clone / "workflow" / "Snakefile", pythonpath=clone)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "Nothing to be done" in moved.stdout

    with open(clone / "spino" / "labelgen" / "fusion.py", "a") as f:
        f.write("\n# an edit to the fusion\n")
    plan = planned_rules(
        snakemake(finished_run, TINY, "-n", snakefile=clone / "workflow" / "Snakefile", pythonpath=clone)
    )
    assert "pseudo_label" in plan and "train_semantic_head" not in plan and "index" not in plan


def test_readme_store_tools_run_on_a_finished_run(finished_run: Path, tmp_path: Path, monkeypatch) -> None:
    """Every `spino` line of the block in docs/label-stores.md, as written (the run named tiny, not demo),
    through the same entry point as the console script (in this process: torch is imported once)."""
    from PIL import Image

    from spino.cli import main
    from spino.encoding import IGNORE_PANOPTIC
    from spino.store import LabelStore

    from helpers import assert_inspect_picture

    block = (REPO / "docs" / "label-stores.md").read_text().split("```bash\n")[1].split("```")[0]
    commands = [
        shlex.split(line.split("#")[0].replace("results/demo", "results/tiny"))
        for line in block.splitlines()
        if line.strip()
    ]
    assert len(commands) == 6 and all(c[0] == "spino" for c in commands)
    workdir = copy_of(finished_run, tmp_path)
    monkeypatch.chdir(workdir)
    for command in commands:
        assert main(command[1:]) == 0, command
    exported = json.loads((workdir / "s.json").read_text())["summary"]
    assert (
        main(
            [
                "evaluate",
                "results/tiny/pseudo_labels.zarr",
                "--gt",
                "results/tiny/ground_truth.zarr",
                "--json",
                "d.json",
                "--csv",
                "d.csv",
            ]
        )
        == 0
    )
    assert exported == json.loads((workdir / "d.json").read_text())["summary"]  # the gtFine export is lossless
    assert exported["images"] == 9
    store = LabelStore(workdir / "results/tiny/pseudo_labels.zarr")
    image = np.asarray(Image.open(workdir / store.meta["image_paths"][3]).convert("RGB"))
    assert_inspect_picture(np.asarray(Image.open(workdir / "overlay.png")), store, 3, image)
    coco = json.loads((workdir / "coco" / "panoptic.json").read_text())
    assert [a["image_id"] for a in coco["annotations"]] == list(store.image_ids)
    for index, annotation in enumerate(coco["annotations"]):
        labelled = int((store.panoptic(index) != IGNORE_PANOPTIC).sum())
        assert sum(s["area"] for s in annotation["segments_info"]) == labelled > 0
        assert (workdir / "coco" / "panoptic" / annotation["file_name"]).is_file()


def test_a_cvat_export_of_ten_labelled_images_runs_end_to_end_from_spino_init(tmp_path: Path) -> None:
    """The story of docs/your-data.md: 10 images labelled in CVAT (COCO 1.0: instances_default.json,
    split default, categories without isthing, stuff as regions), the robot's other images unlabelled,
    three from a second camera of another size (one of them labelled); the config from spino init
    (the test shrinks its model sizes, nothing else); snakemake to the end; spino segment on new images."""
    from PIL import Image

    from spino.cli import main as spino
    from spino.data import open_dataset
    from spino.data.io import resize_nearest
    from spino.data.synthetic import DemoSpec, write_demo
    from spino.store import LabelStore

    from helpers import cvat_export, shrink_init_config

    write_demo(tmp_path / "demo", DemoSpec(n_train=20, n_val=4, height=64, width=128, seed=1))
    cvat_export(tmp_path / "demo", tmp_path / "cvat", labelled=10, resized=3, size=(96, 160))
    work = tmp_path / "work"
    work.mkdir()
    assert spino(["init", str(tmp_path / "cvat"), "--run", "robot", "--out", str(work / "robot.yaml")]) == 0
    text = (work / "robot.yaml").read_text()
    assert "things: [person, car]   # CONFIRM" in text and "k: 10" in text and "eval_splits: []" in text
    config = yaml.safe_load(text)
    assert config["dataset"] == {
        "kind": "coco",
        "root": str(tmp_path / "cvat"),
        "splits": ["default"],
        "things": ["person", "car"],
    }
    shrink_init_config(config)
    result = snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = work / "results" / "robot"
    manifest = (work / "logs" / "robot" / "index.log").read_text()
    assert "24 images, 10 with ground truth, 10 annotated" in manifest
    assert (
        "working size 128x64 (W x H); 3 images of other sizes are resized to it for the stores (3 at 160x96)"
        in manifest
    )
    for store in ("ground_truth", "pseudo_labels"):
        opened = LabelStore(results / f"{store}.zarr")
        assert (opened.height, opened.width) == (64, 128)
        assert sorted(map(tuple, opened.meta["image_sizes"]))[-1] == (96, 160)  # each image's own size, recorded
    gt = LabelStore(results / "ground_truth.zarr")
    coco = open_dataset("coco", tmp_path / "cvat", ["default"], things=["person", "car"])
    own = coco.read_panoptic(next(r for r in coco.scan() if r.image_id == "demo_0023"))  # the second camera's
    assert own.shape == (96, 160)
    assert np.array_equal(gt.panoptic(gt.index_of("demo_0023")), resize_nearest(own, (64, 128)))
    scores = json.loads((results / "scores" / "pseudo_labels.json").read_text())
    assert "every labelled image was annotated" in scores["not_scored"]
    assert not (results / "scores" / "predictions.json").exists()  # one split: trained, not scored
    report = (results / "report" / "report.html").read_text()
    assert "pseudo-labels not scored</b>: " in report
    export = tmp_path / "export"
    assert spino(["export", str(results / "pseudo_labels.zarr"), "--format", "coco", "--out", str(export)]) == 0
    assert Image.open(export / "panoptic" / "demo_0023.png").size == (160, 96)  # at its own image's size
    assert Image.open(export / "panoptic" / "demo_0000.png").size == (128, 64)
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(tmp_path / "demo" / "images" / "demo_0005.png", new / "a.png")
    Image.open(new / "a.png").resize((200, 120)).save(new / "wide.png")
    assert spino(["segment", str(results / "panoptic" / "model.pt"), str(new), "--out", str(tmp_path / "seg")]) == 0
    assert Image.open(tmp_path / "seg" / "panoptic" / "wide.png").size == (200, 120)
    assert len(json.loads((tmp_path / "seg" / "panoptic.json").read_text())["annotations"]) == 2
