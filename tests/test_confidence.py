"""The student weighs its teacher's confidence (panoptic.train.confidence): hand-computed targets and
losses on small maps, and the mixed batch that uses them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spino.choices import check_config
from spino.classes import DEMO, IGNORE
from spino.encoding import IGNORE_PANOPTIC, encode, semantic_of
from spino.errors import InputError
from spino.losses import top_k_cross_entropy
from spino.panoptic.confidence import ConfidenceConfig, uncertain_instances_as_crowd, weigh_semantic
from spino.panoptic.instances.base import Widths
from spino.panoptic.instances.center_offset.method import CenterOffset
from spino.panoptic.instances.center_offset.settings import CenterOffsetConfig
from spino.panoptic.model import ModelConfig
from spino.panoptic.sampler import Augment, MixedBatchData, samples_from
from spino.panoptic.targets import TargetConfig
from spino.panoptic.train import TrainConfig, TrainingData, train_panoptic
from spino.store import LabelStore, create_store, store_summary

from helpers import TINY, store_from_maps, tiny_model, training_inputs

ROAD, CAR = 0, 6
OFF = ConfidenceConfig(semantic="none", instance_threshold=0.0)


def two_cars() -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 16 road with car 1 (rows and columns 2-5, confidence 0.5) and car 2 (9-13, confidence
    0.95), one void pixel; the road is 0.7 sure."""
    semantic = np.full((16, 16), ROAD, np.uint8)
    instance = np.zeros((16, 16), np.uint16)
    confidence = np.full((16, 16), 0.7, np.float16)
    semantic[2:6, 2:6], instance[2:6, 2:6], confidence[2:6, 2:6] = CAR, 1, 0.5
    semantic[9:14, 9:14], instance[9:14, 9:14], confidence[9:14, 9:14] = CAR, 2, 0.95
    semantic[15, 0] = IGNORE
    return encode(semantic, instance), confidence


def test_an_uncertain_instance_becomes_crowd_with_no_centre_or_offset_loss() -> None:
    panoptic, confidence = two_cars()
    kept = uncertain_instances_as_crowd(panoptic, confidence, DEMO, threshold=0.8)
    expected = panoptic.copy()
    expected[2:6, 2:6] = CAR * 1000  # car, no instance: crowd
    assert np.array_equal(kept, expected)
    assert kept[15, 0] == IGNORE_PANOPTIC
    assert np.array_equal(uncertain_instances_as_crowd(panoptic, confidence, DEMO, threshold=0.5), panoptic)

    method = CenterOffset(CenterOffsetConfig(sigma=2.0), Widths(adapter=16, decoder=16, head=8))
    targets = method.targets(kept, DEMO, TargetConfig())
    assert targets["center_weights"][0, 2:6, 2:6].sum() == 0 and targets["offset_weights"][0, 2:6, 2:6].sum() == 0
    assert targets["offset_weights"][0, 9:14, 9:14].sum() == 25
    assert targets["center"][0, 11, 11] == 1.0 and targets["center"][0, 2:6, 2:6].max() < 1e-3  # no peak of car 1
    # Outputs right everywhere but on the uncertain car, and wrong there: no centre or offset loss.
    outputs = {"center": targets["center"][None].clone(), "offset": targets["offset"][None].clone()}
    outputs["center"][..., 2:6, 2:6] = 0.9
    outputs["offset"][..., 2:6, 2:6] = 7.0
    batch = {k: v[None] for k, v in targets.items()}
    assert method.losses(outputs, batch) == {"center": 0.0, "offset": 0.0}
    # The same outputs against the original map's targets: the car's centre and offsets count.
    original = {k: v[None] for k, v in method.targets(panoptic, DEMO, TargetConfig()).items()}
    assert all(loss > 0 for loss in method.losses(outputs, original).values())
    # The semantic targets keep the crowd car.
    assert (targets["semantic"][2:6, 2:6] == CAR).all()


def test_a_pixel_with_confidence_zero_contributes_nothing_to_the_semantic_loss() -> None:
    """Four pixels of two classes; top_k 1 (every pixel): weight multiplies each pixel's
    cross-entropy, threshold drops the pixels under it from the mean."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.5, 0.5]]).T.reshape(1, 2, 2, 2)
    target = torch.tensor([[0, 1], [0, 0]])
    confidence = np.array([[1.0, 0.5], [0.0, 0.75]], np.float16)
    ce = [math.log1p(math.exp(-2.0)), math.log1p(math.exp(-1.0)), math.log1p(math.exp(-4.0)), math.log(2.0)]

    targets = {"semantic": target.clone(), "semantic_weights": torch.ones(2, 2)}
    weigh_semantic(targets, {"confidence": confidence}, ConfidenceConfig(semantic="weight"))
    loss = top_k_cross_entropy(logits, targets["semantic"][None], 1.0, targets["semantic_weights"][None])
    assert loss.item() == pytest.approx((ce[0] + 0.5 * ce[1] + 0 * ce[2] + 0.75 * ce[3]) / 4, rel=1e-6)
    moved = logits.clone()
    moved[0, :, 1, 0] = torch.tensor([-5.0, 5.0])  # the confidence-0 pixel now badly wrong
    assert top_k_cross_entropy(moved, targets["semantic"][None], 1.0, targets["semantic_weights"][None]) == loss

    targets = {"semantic": target.clone(), "semantic_weights": torch.ones(2, 2)}
    weigh_semantic(targets, {"confidence": confidence}, ConfidenceConfig(semantic="threshold", pixel_threshold=0.6))
    assert targets["semantic"].tolist() == [[0, IGNORE], [IGNORE, 0]]
    loss = top_k_cross_entropy(logits, targets["semantic"][None], 1.0, targets["semantic_weights"][None])
    assert loss.item() == pytest.approx((ce[0] + ce[3]) / 2, rel=1e-6)

    targets = {"semantic": target.clone(), "semantic_weights": torch.ones(2, 2)}
    weigh_semantic(targets, {"confidence": confidence}, OFF)
    assert torch.equal(targets["semantic"], target) and torch.equal(targets["semantic_weights"], torch.ones(2, 2))


def test_a_soft_target_splits_each_pixels_loss_between_the_teachers_two_classes() -> None:
    """Four pixels (top_k 1: every pixel): the runner-up's share is p2 / (p1 + p2); a pixel whose
    runner-up is void, whose own class is void, or whose runner-up is its own class keeps a hard target."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.5, 0.5]]).T.reshape(1, 2, 2, 2)
    target = torch.tensor([[0, 1], [IGNORE, 0]])
    confidence = np.array([[0.6, 0.5], [0.9, 0.75]], np.float16)
    runner_up = np.array([[1, IGNORE], [1, 0]], np.uint8)  # pixel (1, 1): the same class as its target
    second = np.array([[102, 51], [25, 64]], np.uint8)  # x 255: 0.4, 0.2, ...
    targets = {"semantic": target.clone(), "semantic_weights": torch.ones(2, 2)}
    maps = {"confidence": confidence, "runner_up": runner_up, "runner_up_confidence": second}
    weigh_semantic(targets, maps, ConfidenceConfig(semantic="soft"))
    assert targets["semantic_runner_up"].tolist() == [[1, IGNORE], [IGNORE, IGNORE]]
    p1, p2 = np.float32(np.float16(0.6)), np.float32(102) / 255  # the stored values: 0.6001, 0.4
    share = float(p2 / (p1 + p2))
    assert share == pytest.approx(0.4, abs=1e-3)
    assert targets["semantic_runner_up_share"][0, 0].item() == pytest.approx(share, rel=1e-6)
    assert targets["semantic_runner_up_share"].flatten()[1:].tolist() == [0, 0, 0]

    soft = (targets["semantic_runner_up"][None], targets["semantic_runner_up_share"][None])
    loss = top_k_cross_entropy(logits, targets["semantic"][None], 1.0, targets["semantic_weights"][None], soft)
    ce_0, ce_1 = math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0))  # pixel (0, 0) as class 0, as class 1
    expected = ((1 - share) * ce_0 + share * ce_1 + math.log1p(math.exp(-1.0)) + math.log(2.0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    hard = top_k_cross_entropy(logits, targets["semantic"][None], 1.0, targets["semantic_weights"][None])
    assert hard.item() == pytest.approx((ce_0 + math.log1p(math.exp(-1.0)) + math.log(2.0)) / 3, rel=1e-6)


def test_soft_targets_need_the_runner_up_in_the_store_and_the_heads_to_write_it(tmp_path: Path) -> None:
    soft = {**TINY, "panoptic": {**TINY["panoptic"], "train": {"confidence": {"semantic": "soft"}}}}
    with pytest.raises(InputError, match=r"^panoptic.train.confidence.semantic: soft needs pseudo_labels.top2: true"):
        check_config(soft)
    check_config({**soft, "pseudo_labels": {**TINY.get("pseudo_labels", {}), "top2": True}})
    with pytest.raises(InputError, match="pseudo_labels.top2: PriMaPs labels carry no class probabilities"):
        check_config({**TINY, "labelgen": "primaps", "pseudo_labels": {"top2": True}})
    with pytest.raises(InputError, match="needs the confidence array too"):
        create_store(tmp_path / "s.zarr", ["a"], 4, 4, DEMO, 1, with_runner_up=True)
    store = create_store(tmp_path / "s.zarr", ["a"], 4, 4, DEMO, 1, with_confidence=True, with_runner_up=True)
    semantic = np.zeros((1, 4, 4), np.uint8)
    confidence = np.full((1, 4, 4), 0.5, np.float16)
    assert store_summary(store)["arrays"] == ["semantic", "panoptic", "confidence", "runner_up", "runner_up_confidence"]
    with pytest.raises(ValueError, match="this store holds runner_up; pass it for shard 0"):
        store.write_shard(0, semantic, encode(semantic, np.zeros_like(semantic, np.uint16)), confidence)


@pytest.fixture(scope="module")
def stores(demo_root: Path, tmp_path_factory) -> dict:
    """The demo's labels as pseudo-labels without confidence (pseudo.zarr, as older runs wrote them)
    and the same labels 0.25 sure of every pixel (unsure.zarr; a power of two: weights stay exact)."""
    run = training_inputs(demo_root, tmp_path_factory.mktemp("confidence"))
    pseudo = LabelStore(run["dir"] / "pseudo.zarr")
    maps = [pseudo.panoptic(i) for i in range(len(run["ids"]))]
    confidences = [np.full(m.shape, 0.25, np.float16) for m in maps]
    paths = pseudo.meta["image_paths"]
    store_from_maps(run["dir"] / "unsure.zarr", run["ids"], maps, DEMO, image_paths=paths, confidences=confidences)
    # a runner-up one class on from each pixel's own, 0.5 likely (stored as 128 / 255)
    runner_ups = [((semantic_of(m).astype(np.int64) + 1) % DEMO.num_classes, np.full(m.shape, 0.5)) for m in maps]
    runner_ups = [(np.where(semantic_of(m) == IGNORE, IGNORE, r), p) for m, (r, p) in zip(maps, runner_ups)]
    store_from_maps(
        run["dir"] / "doubt.zarr",
        run["ids"],
        maps,
        DEMO,
        image_paths=paths,
        confidences=confidences,
        runner_ups=runner_ups,
    )
    return run


def mixed(run: dict, pseudo: str, confidence: ConfidenceConfig) -> MixedBatchData:
    """Ground truth from the same store as the pseudo-labels: slot 0 must stay unweighed even where
    its store holds a confidence."""
    store = LabelStore(run["dir"] / pseudo)
    return MixedBatchData(
        samples_from(store, run["ids"][:2]),
        samples_from(store, run["ids"][2:]),
        DEMO,
        (48, 96),
        4,
        seed=3,
        augment=Augment(min_scale=0.5, max_scale=2.0),
        targets=TargetConfig(small_instance_area=100),
        method=CenterOffset(CenterOffsetConfig(sigma=2.0), Widths(adapter=16, decoder=16, head=8)),
        confidence=confidence,
    )


def test_the_mixed_batch_weighs_pseudo_labels_only_and_a_store_without_confidence_trains_as_before(
    stores: dict,
) -> None:
    off = mixed(stores, "unsure.zarr", OFF).batch(0, range(4))
    labelled = off["semantic"][1:] != IGNORE
    weighed = mixed(stores, "unsure.zarr", ConfidenceConfig(semantic="weight", instance_threshold=0.0)).batch(
        0, range(4)
    )
    crowded = mixed(stores, "unsure.zarr", ConfidenceConfig(instance_threshold=0.5)).batch(0, range(4))
    for batch in (weighed, crowded):
        assert torch.equal(off["image"], batch["image"])  # the same crops, flips and jitter
        for key in off:  # slot 0, ground truth: confidence 1, unchanged
            assert torch.equal(off[key][0], batch[key][0]), key
    assert torch.equal(weighed["semantic_weights"][1:][labelled], 0.25 * off["semantic_weights"][1:][labelled])
    assert torch.equal(weighed["semantic"], off["semantic"]) and torch.equal(weighed["center"], off["center"])
    # every pseudo-labelled instance is 0.25 sure: crowd, no centre or offset loss; the ground truth keeps its own
    assert off["offset_weights"][1:].sum() > 0 and crowded["offset_weights"][1:].sum() == 0
    assert crowded["center"][1:].sum() == 0 and off["offset_weights"][0].sum() > 0
    assert torch.equal(crowded["semantic"], off["semantic"])

    legacy = mixed(stores, "pseudo.zarr", ConfidenceConfig(semantic="threshold", instance_threshold=0.9))
    unused = mixed(stores, "pseudo.zarr", OFF)
    for step in (0, 1):
        a, b = legacy.batch(step, range(4)), unused.batch(step, range(4))
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_soft_targets_in_the_mixed_batch_come_from_the_pseudo_labels_and_the_ground_truth_stays_hard(
    stores: dict,
) -> None:
    off = mixed(stores, "doubt.zarr", OFF).batch(0, range(4))
    soft = mixed(stores, "doubt.zarr", ConfidenceConfig(semantic="soft", instance_threshold=0.0)).batch(0, range(4))
    for key in off:  # the same crops, flips, jitter and hard targets
        assert torch.equal(off[key], soft[key]), key
    assert (soft["semantic_runner_up"][0] == IGNORE).all() and (soft["semantic_runner_up_share"][0] == 0).all()
    labelled = off["semantic"][1:] != IGNORE
    assert labelled.any()
    assert torch.equal(soft["semantic_runner_up"][1:][labelled], (off["semantic"][1:][labelled] + 1) % DEMO.num_classes)
    assert (soft["semantic_runner_up"][1:][~labelled] == IGNORE).all()
    expected = np.float32(128 / 255) / (np.float32(0.25) + np.float32(128 / 255))  # p2 / (p1 + p2)
    assert torch.allclose(soft["semantic_runner_up_share"][1:][labelled], torch.tensor(expected), rtol=1e-6)
    assert (soft["semantic_runner_up_share"][1:][~labelled] == 0).all()
    with pytest.raises(InputError, match="unsure.zarr: the store holds no runner_up array"):  # written without top2
        mixed(stores, "unsure.zarr", ConfidenceConfig(semantic="soft")).batch(0, range(4))


def test_a_student_trains_on_soft_targets_and_a_store_without_runner_ups_is_refused_before_it_starts(
    stores: dict, tmp_path: Path
) -> None:
    truth = samples_from(LabelStore(stores["dir"] / "gt.zarr"), stores["ids"][:2])
    model_cfg = ModelConfig.from_dict(tiny_model((48, 96)), TINY["backbone"])
    settings = {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "val_every": 2, "val_images": 0}
    cfg = TrainConfig.from_dict({**settings, "confidence": {"semantic": "soft"}})
    for name in ("unsure.zarr", "doubt.zarr"):
        data = TrainingData(DEMO, truth, samples_from(LabelStore(stores["dir"] / name), stores["ids"][2:]))
        if name == "unsure.zarr":
            with pytest.raises(InputError, match="unsure.zarr: panoptic.train.confidence.semantic: soft needs"):
                train_panoptic(cfg, model_cfg, data, tmp_path / name, tmp_path / name / "model.pt", "cpu", 0)
            assert not (tmp_path / name / "model.pt").exists()
        else:
            train_panoptic(cfg, model_cfg, data, tmp_path / name, tmp_path / name / "model.pt", "cpu", 0)
            rows = (tmp_path / name / "losses.csv").read_text().splitlines()
            assert len(rows) == 3 and all(math.isfinite(float(v)) for row in rows[1:] for v in row.split(","))
