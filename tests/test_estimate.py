"""The run's time estimate: each rule's work from the config and the images, times measured rates."""

from __future__ import annotations

import pytest

from spino.choices import check_config
from spino.estimate import RATES, Work, estimate, rule_work, wall_seconds

from helpers import TINY


def test_each_rules_work_follows_the_config_and_the_images() -> None:
    config = check_config(TINY)
    work = Work(images={"train": 6, "val": 3}, labelled={"train": 6, "val": 3}, annotated=2, size=(64, 128))
    units = rule_work(config, work)
    mp = 64 * 128 / 1e6
    # steps (epochs x annotated) x MLP positions x products of its hidden widths: [16, 16] at output stride 1,
    # [16, 8] on stride-8 features upsampled 4x
    assert units["train_semantic_head"] == pytest.approx((30 * 64 * 128 * 16 * 16 / 1e9, 30))
    assert units["train_boundary_head"] == pytest.approx((30 * 32 * 64 * 16 * 8 / 1e9, 30))
    assert units["pseudo_label"] == pytest.approx((9 * mp * (1 + 4), 3))  # scales 1 and 2: 1 + 4 pixel factors
    assert units["train_panoptic"] == pytest.approx(((6 * 2 + 2 * 2) * mp, 1))  # steps x batch + 2 validations of 2
    assert units["predict"] == pytest.approx((3 * mp, 2))  # the tiny run's predictions: 2 images a shard
    assert units["other"] == pytest.approx((9 * mp, 10))


def test_twice_the_steps_cost_the_panoptic_rate_twice_and_gpu_stages_are_left_out() -> None:
    config = check_config(TINY)
    work = Work(images={"train": 6, "val": 3}, labelled={"train": 6, "val": 3}, annotated=2, size=(64, 128))
    longer = check_config(
        {**TINY, "panoptic": {**TINY["panoptic"], "train": {**TINY["panoptic"]["train"], "steps": 12}}}
    )
    extra = estimate(longer, work)["train_panoptic"] - estimate(config, work)["train_panoptic"]
    # 6 more steps of batch 2, and 2 more validations (every 3 steps) of 2 images
    assert extra == pytest.approx(RATES["train_panoptic"].per_unit * (6 * 2 + 2 * 2) * 64 * 128 / 1e6)
    assert estimate(config, work, speed=2.0)["pseudo_label"] == pytest.approx(
        estimate(config, work)["pseudo_label"] / 2
    )
    on_gpu = check_config({**TINY, "gpus": {"heads": 1, "pseudo_label": 0, "panoptic": 0, "predict": 0}})
    assert "train_semantic_head" not in estimate(on_gpu, work, gpu=True) and "pseudo_label" in estimate(on_gpu, work)
    assert "train_semantic_head" in estimate(on_gpu, work, gpu=False)  # no GPU here: it runs on the CPU
    seconds = {"pseudo_label": 100.0, "train_panoptic": 50.0}
    assert wall_seconds(seconds, cores=2) == 100.0  # one-thread shard jobs two at a time; training on all cores
