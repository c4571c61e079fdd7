"""Stages 1-5 through the workflow: the index (a folder dataset's changes), the heads (a changed
setting spares the other head; self-training and the embedding fusion), the pseudo-label shards (a lost
one planned again), suggest, and the label-free run."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import AFTER_THE_HEADS, TINY, copy_of, planned_rules, snakemake, spino_cli

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("on_the_cpu")]


def test_changed_semantic_head_parameter_spares_the_boundary_head(finished_run: Path) -> None:
    config = copy.deepcopy(TINY)
    config["semantic_head"]["lr"] = 2e-3
    plan = planned_rules(snakemake(finished_run, config, "-n"))
    assert "train_semantic_head" in plan and "pseudo_label" in plan and "evaluate" in plan
    assert "train_boundary_head" not in plan and "index" not in plan and "write_ground_truth_shard" not in plan


def test_lost_or_changed_shard_is_planned_again_and_refused_by_readers(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    store = run / "results/tiny/pseudo_labels.zarr"
    digest = json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"]
    (store / "panoptic/c/1/0/0").unlink()

    dry = snakemake(run, TINY, "-n")
    assert planned_rules(dry) >= {"pseudo_label", "gather", "evaluate"}
    assert re.findall(r"output: results/tiny/pseudo_labels\.shards/(\d+)\.json", dry.stdout) == ["1"]
    refused = spino_cli(
        run, "evaluate", str(store), "--gt", "results/tiny/ground_truth.zarr", "--json", "s.json", "--csv", "s.csv"
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert (
        "pseudo_labels.zarr: label store is incomplete: shard 1 is damaged (panoptic/c/1/0/0 is missing)"
        in refused.stderr
    )
    info = json.loads(spino_cli(run, "info", str(store)).stdout)
    assert info["complete"] is False and list(info["damaged_shards"]) == ["1"]

    result = snakemake(run, TINY)  # repairs exactly that shard
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"] == digest
    assert "Nothing to be done" in snakemake(run, TINY, "-n").stdout

    # random bytes of the same size: only the content check sees them, and reading names the shard
    shard_file = store / "semantic/c/2/0/0"
    data = bytearray(shard_file.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    shard_file.write_bytes(bytes(data))
    assert json.loads(spino_cli(run, "info", str(store)).stdout)["complete"] is True  # sizes only
    verified = json.loads(spino_cli(run, "info", str(store), "--verify").stdout)
    assert (
        verified["complete"] is False
        and "semantic/c/2/0/0 differs from its recorded sha256" in verified["damaged_shards"]["2"]
    )


FOLDER = {**TINY, "run": "folder", "dataset": {"kind": "folder", "root": "data", "splits": ["train", "val"]}}


def test_folder_dataset_changes_rerun_the_index_and_bad_splits_fail_there(tmp_path: Path) -> None:
    from spino.data.synthetic import DemoSpec, write_demo

    write_demo(tmp_path / "data", DemoSpec(n_train=4, n_val=2, height=64, width=128, seed=5))
    result = snakemake(tmp_path, FOLDER, "results/folder/manifest.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in snakemake(tmp_path, FOLDER, "-n", "results/folder/manifest.csv").stdout

    images = sorted((tmp_path / "data" / "images").iterdir())
    shutil.copy(images[0], tmp_path / "data" / "images" / "extra.png")
    assert "index" in planned_rules(snakemake(tmp_path, FOLDER, "-n"))
    (tmp_path / "data" / "images" / "extra.png").unlink()

    shutil.copy(tmp_path / "data" / "semantic" / f"{images[0].stem}.png", tmp_path / "data" / "semantic" / "orphan.png")
    failed = snakemake(tmp_path, FOLDER, "results/folder/manifest.csv")
    assert failed.returncode != 0
    assert "semantic: labels without an image in" in (tmp_path / "logs/folder/index.log").read_text()
    (tmp_path / "data" / "semantic" / "orphan.png").unlink()

    no_val = copy.deepcopy(FOLDER)
    no_val["panoptic"]["eval_splits"] = ["test"]
    failed = snakemake(tmp_path, no_val, "results/folder/manifest.csv")
    assert failed.returncode != 0
    assert "split 'test' has no" in (tmp_path / "logs/folder/index.log").read_text()


def test_suggest_writes_the_annotation_section_a_config_takes(finished_run: Path, tmp_path: Path) -> None:
    """`snakemake suggest` chooses k train images by their descriptors; the run itself is untouched,
    and a config taking the suggestion plans a new index and everything after it."""
    from helpers import assert_suggestion_figure

    run = copy_of(finished_run, tmp_path)
    config = {**copy.deepcopy(TINY), "suggest": {"k": 2, "method": "kcenter", "input_size": [64, 128]}}
    result = snakemake(run, config, "suggest")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"report"}  # only the config it shows changed
    suggestion = yaml.safe_load((run / "results/tiny/suggest/annotation.yaml").read_text())
    assert suggestion["annotation"]["split"] == "train" and len(suggestion["annotation"]["ids"]) == 2
    assert_suggestion_figure(run / "results/tiny/suggest/suggestion.png", 2)
    config["annotation"] = suggestion["annotation"]
    assert "index" in planned_rules(snakemake(run, config, "-n"))


SELF_TRAINING = {"enabled": True, "rounds": 1, "neighbours": 2, "epochs": 2, "lr": 1e-3}


BEYOND = {
    **TINY,
    "self_training": SELF_TRAINING,
    "suggest": {"input_size": [64, 128]},
    "pseudo_labels": {**TINY["pseudo_labels"], "fusion": "embedding"},
    "embedding_head": {"hidden": [32, 32], "dim": 8, "input_size": [64, 128], "epochs": 15, "lr": 3e-3},
}


def test_self_training_and_embedding_fusion_rerun_only_what_follows_the_heads(
    finished_run: Path, tmp_path: Path
) -> None:
    """Self-training on and fusion: embedding run, after the kept heads, the image descriptors, the
    self-training and the embedding head; the store is labelled by the self-trained semantic head and
    clustered embeddings, each shard also written as HDF5 that plain h5py reads (segmentation = the
    store's). Changing a self-training or embedding-head setting then reruns that stage and what uses
    it, never the other heads or the descriptors."""
    import h5py

    from spino.store import LabelStore

    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(BEYOND)
    plan = snakemake(run, config, "-n", "-p")
    assert planned_rules(plan) - {"all"} == {"image_features", "self_train", "train_embedding_head"} | AFTER_THE_HEADS
    assert "--input semantic_head=results/tiny/self_training/semantic.pt" in plan.stdout
    result = snakemake(run, config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = run / "results/tiny"
    neighbours = (results / "self_training/neighbours.csv").read_text().splitlines()
    assert (
        neighbours[0] == "annotated,rank,neighbour,similarity" and len(neighbours) == 1 + 2 * 2
    )  # 4 of the 4 unlabelled train images
    store = LabelStore(results / "pseudo_labels.zarr")
    for shard in range(store.num_shards):
        with h5py.File(results / f"spoco/{shard}.h5", "r") as f:
            ids = [i.decode() for i in f["image_ids"][:]]
            raw, embeddings, segmentation = f["raw"][:], f["embeddings"][:], f["segmentation"][:]
        assert raw.shape == (len(ids), 64, 128, 3) and raw.dtype == np.uint8
        assert embeddings.shape == (len(ids), 8, 32, 64)  # 4 x the stride-8 features
        for image_id, seg in zip(ids, segmentation):
            assert np.array_equal(seg, store.panoptic(store.index_of(image_id)))
    assert "Nothing to be done" in snakemake(run, config, "-n").stdout
    config["self_training"]["epochs"] = 3
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"self_train"} | AFTER_THE_HEADS
    config["self_training"]["epochs"] = 2
    config["embedding_head"]["instance_fraction"] = 0.1
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"train_embedding_head"} | AFTER_THE_HEADS
    config = {**TINY, "self_training": {**SELF_TRAINING, "enabled": False}}
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == AFTER_THE_HEADS  # back to the first heads' labels


def labels_against_chance(workdir: Path, seeds: int = 3) -> tuple:
    """Unmatched statistics of the label-free run's store against its ground truth, and the matched mIoU
    of the same principal masks given clusters at random (the mean over ``seeds``)."""
    from spino.data.io import read_image
    from spino.labelgen.primaps import load_primaps
    from spino.metrics import PanopticStats
    from spino.store import LabelStore

    from helpers import matched_miou, random_cluster_labels

    results = workdir / "results/tiny"
    labels, gt = LabelStore(results / "pseudo_labels.zarr"), LabelStore(results / "ground_truth.zarr")
    labeller = load_primaps(results / "primaps" / "prototypes.pt")
    classes = gt.class_set.num_classes
    found, chance = PanopticStats(classes), [PanopticStats(classes) for _ in range(seeds)]
    rngs = [np.random.default_rng(seed) for seed in range(seeds)]
    for index, image_id in enumerate(gt.image_ids):
        truth = gt.panoptic(index)
        found.update(truth, labels.panoptic(labels.index_of(image_id)), gt.class_set)
        _, masks = labeller.masks(read_image(workdir / gt.meta["image_paths"][index]))
        for stats, rng in zip(chance, rngs):
            stats.update(truth, random_cluster_labels(masks, truth.shape, classes, rng), gt.class_set)
    return found, float(np.mean([matched_miou(s) for s in chance]))


# A label-free config describes no heads and no panoptic model: it trains neither.
PRIMAPS = {
    **{k: v for k, v in TINY.items() if k not in ("semantic_head", "boundary_head", "panoptic")},
    "labelgen": "primaps",
    "annotation": {"split": "train", "k": 0},
    "primaps": {"input_size": [64, 128]},
}


def test_label_free_run_scores_clusters_after_matching(tmp_path: Path) -> None:
    """labelgen: primaps fits prototypes instead of training heads, labels the store with clusters and
    scores them after a Hungarian matching (saying so); it has no panoptic stages. k: 0 needs it."""
    from spino.classes import DEMO

    from helpers import matched_classes, matched_miou

    plan = planned_rules(snakemake(tmp_path, PRIMAPS, "-n"))
    assert {"fit_primaps", "create_pseudo_label_store", "evaluate"} <= plan  # shard jobs: known after the index
    assert not plan & {"train_semantic_head", "train_boundary_head", "train_panoptic", "predict", "report"}
    result = snakemake(tmp_path, PRIMAPS)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results/tiny/scores/pseudo_labels.json").read_text())["summary"]
    assert summary["matching"] == "hungarian" and summary["images"] == 9
    found, chance = labels_against_chance(tmp_path)
    # the matching the scores name is the one that maximises the pixels clusters and classes share
    classes = found.confusion.shape[0]
    expected = matched_classes(found.confusion)
    assert summary["clusters"] == {str(cluster): DEMO.names[c] for cluster, c in enumerate(expected)}
    assert expected.tolist() != list(range(classes))  # cluster ids are not class ids: the matching mattered
    assert summary["miou"] == pytest.approx(matched_miou(found), abs=1e-9)
    assert summary["miou"] >= 1.5 * chance, (summary["miou"], chance)  # measured: 0.23 vs 0.11
    changed_threshold = {**PRIMAPS, "primaps": {**PRIMAPS["primaps"], "threshold": 0.5}}
    assert planned_rules(snakemake(tmp_path, changed_threshold, "-n")) - {"all"} == {
        "fit_primaps",
        "create_pseudo_label_store",
        "pseudo_label",
        "gather",
        "evaluate",
    }
    heads_without_images = {**TINY, "annotation": {"split": "train", "k": 0}}
    refused = snakemake(tmp_path, heads_without_images, "-n")
    assert refused.returncode != 0 and "needs labelgen: primaps" in refused.stdout + refused.stderr
    refused = snakemake(tmp_path, {**PRIMAPS, "self_training": {"enabled": True}}, "-n")
    assert refused.returncode != 0 and "which labelgen: primaps does not train" in refused.stdout + refused.stderr
    # a run with heads needs no panoptic section either: the paper's panoptic model is the default
    planned = snakemake(tmp_path, {k: v for k, v in TINY.items() if k != "panoptic"}, "-n")
    assert planned.returncode == 0 and {"train_panoptic", "create_prediction_store", "report"} <= planned_rules(planned)
