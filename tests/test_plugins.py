"""A plugin from outside the tree: the toy package of tests/data/toy_plugin, installed with pip into a
folder of its own, declares by entry point a head kind, a fusion that reads that head, and an
instance method, each with settings of its own; the workflow plans, validates and runs them like
spino's own."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from spino.classes import DEMO
from spino.encoding import LABEL_DIVISOR
from spino.store import LabelStore

from helpers import AFTER_THE_HEADS, REPO, TINY, planned_rules, readme_rerun_table, snakemake


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The toy plugin installed by pip, as a user installs one (into a folder put on PYTHONPATH)."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(REPO / "tests" / "data" / "toy_plugin", work / "source")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*pip, "--target", str(work / "site"), str(work / "source")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return work / "site"


def widest_instance(store: LabelStore) -> int:
    """The most columns any thing instance of the store spans."""
    widest = 0
    for i in range(store.num_images):
        pan = store.panoptic(i)
        for pid in np.unique(pan):
            cls, instance = divmod(int(pid), LABEL_DIVISOR)
            if cls < DEMO.num_classes and DEMO.thing[cls] and instance:
                columns = np.flatnonzero((pan == pid).any(0))
                widest = max(widest, int(columns[-1] - columns[0] + 1))
    return widest


def toy_config() -> dict:
    """The tiny run with the toy's fusion and instance method chosen and a setting of each changed."""
    config = copy.deepcopy(TINY)
    # every blob pixel a seed (sure: 0): the stripes exact, the thing head's output read all the same
    config["pseudo_labels"] = {**config["pseudo_labels"], "fusion": "stripes", "stripes": {"stripe": 6, "sure": 0.0}}
    config["thing_head"] = {"epochs": 4}
    model = config["panoptic"]["model"]
    config["panoptic"]["model"] = {**model, "instance": "blobs", "blobs": {"threshold": 0.5}}
    return config


@pytest.mark.e2e
def test_a_plugins_head_kind_fusion_and_instance_method_own_their_settings_and_run_through_the_workflow(
    finished_run: Path, plugin_site: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    path = os.pathsep.join(p for p in (str(plugin_site), os.environ.get("PYTHONPATH", "")) if p)
    config = toy_config()

    # a typo in a plugin's setting is named by its path, in one line, like any other setting
    typo = copy.deepcopy(config)
    typo["pseudo_labels"]["stripes"] = {"strip": 6}
    typo["thing_head"] = {"pos_weigth": 2.0}
    typo["panoptic"]["model"]["blobs"] = {"treshold": 0.5}
    result = snakemake(run, typo, "-n", pythonpath=path)
    assert result.returncode != 0
    for line in (
        "pseudo_labels.stripes.strip: unknown setting; pseudo_labels.stripes takes stripe, sure",
        "thing_head.pos_weigth: unknown setting; thing_head takes hidden, input_size, epochs, lr, crop_scale,"
        " color_jitter, seed, output_stride, upsample, pos_weight",
        "panoptic.model.blobs.treshold: unknown setting; panoptic.model.blobs takes threshold, weight",
    ):
        assert f"\n{line}\n" in result.stderr, result.stderr[-2000:]
    # without the plugin installed, its names are unknown (the schema's choices are the registries')
    result = snakemake(run, config, "-n")
    assert result.returncode != 0 and "pseudo_labels.fusion: 'stripes' is not one of" in result.stderr

    # chosen: the toy's head trains (its fusion needs it), and everything after the heads reruns
    assert (
        planned_rules(snakemake(run, config, "-n", pythonpath=path)) - {"all"} == {"train_thing_head"} | AFTER_THE_HEADS
    )
    result = snakemake(run, config, pythonpath=path)
    assert result.returncode == 0, result.stderr[-2000:]
    results = run / "results" / "tiny"
    thing = torch.load(results / "heads" / "thing.pt", weights_only=True)
    assert (thing["kind"], thing["holds"], thing["config"]["pos_weight"]) == ("thing", "a thing head", 1.0)
    assert len((results / "heads" / "thing_losses.csv").read_text().splitlines()) == 1 + 4 * 2  # 4 epochs of 2 images
    before = widest_instance(LabelStore(finished_run / "results" / "tiny" / "pseudo_labels.zarr"))
    after = widest_instance(LabelStore(results / "pseudo_labels.zarr"))
    # a stripe is 6 columns; one under min_pixels joins its neighbour: at most 11
    assert before > 11 >= after > 0, (before, after)
    assert (results / "panoptic" / "losses.csv").read_text().startswith("step,lr,loss,semantic,objectness\n")
    # the report's loss curves: one panel more (4.2 inches each), the thing head's beside spino's heads'
    widths = [Image.open(r / "results" / "tiny" / "report" / "curves.png").width for r in (finished_run, run)]
    assert widths[1] > widths[0], widths

    # a change of each toy setting reruns exactly what it feeds, as a setting of spino's own would
    after_the_heads = dict(readme_rerun_table())["pseudo_labels.min_pixels"]
    panoptic = dict(readme_rerun_table())["panoptic.train.lr"]
    for section, value, feeds in (
        (("pseudo_labels", "stripes"), {"stripe": 3, "sure": 0.0}, after_the_heads),
        (("thing_head",), {"epochs": 4, "pos_weight": 2.0}, {"train_thing_head"} | after_the_heads),
        (("panoptic", "model", "blobs"), {"threshold": 0.0}, panoptic),
    ):
        changed = copy.deepcopy(config)
        node = changed
        for key in section[:-1]:
            node = node[key]
        node[section[-1]] = value
        assert planned_rules(snakemake(run, changed, "-n", pythonpath=path)) - {"all"} == feeds, section
    assert "Nothing to be done" in snakemake(run, config, "-n", pythonpath=path).stdout

    listed = subprocess.run(
        [sys.executable, "-m", "spino", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    ).stdout.splitlines()
    for name in ("thing", "stripes", "blobs"):
        assert f"  {name:<16}spino-toy 0.1.0" in listed
    whole = subprocess.run(
        [sys.executable, "-m", "spino", "plugins", "--schema"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    ).stdout
    schema = yaml.safe_load(whole)["properties"]
    assert schema["thing_head"]["properties"]["pos_weight"]["default"] == 1.0
    assert "blobs" in schema["panoptic"]["properties"]["model"]["properties"]["instance"]["enum"]
