"""A plugin from outside the tree: the toy package of tests/data/toy_plugin, installed with pip into a
folder of its own, declares a fusion with a setting of its own by entry point; the workflow plans,
validates and runs it like spino's own fusions."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.encoding import LABEL_DIVISOR
from spino.store import LabelStore

from helpers import REPO, TINY, planned_rules, readme_rerun_table, snakemake


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


@pytest.mark.e2e
def test_a_fusion_plugin_owns_its_settings_and_runs_through_the_workflow(
    finished_run: Path, plugin_site: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    path = os.pathsep.join(p for p in (str(plugin_site), os.environ.get("PYTHONPATH", "")) if p)
    config = copy.deepcopy(TINY)
    config["pseudo_labels"] = {**config["pseudo_labels"], "fusion": "stripes", "stripes": {"stripe": 6}}

    # a typo in the plugin's setting is named by its path, in one line, like any other setting
    typo = copy.deepcopy(config)
    typo["pseudo_labels"]["stripes"] = {"strip": 6}
    result = snakemake(run, typo, "-n", pythonpath=path)
    assert result.returncode != 0
    assert "pseudo_labels.stripes.strip: unknown setting; pseudo_labels.stripes takes stripe" in result.stderr
    # without the plugin installed, the fusion is unknown (the schema's choices are the registry's)
    result = snakemake(run, config, "-n")
    assert result.returncode != 0 and "pseudo_labels.fusion: 'stripes' is not one of" in result.stderr

    # choosing it, or changing its setting, reruns exactly what a pseudo-label setting feeds
    feeds = dict(readme_rerun_table())["pseudo_labels.min_pixels"]
    assert planned_rules(snakemake(run, config, "-n", pythonpath=path)) - {"all"} == feeds
    result = snakemake(run, config, pythonpath=path)
    assert result.returncode == 0, result.stderr[-2000:]
    before = widest_instance(LabelStore(finished_run / "results" / "tiny" / "pseudo_labels.zarr"))
    after = widest_instance(LabelStore(run / "results" / "tiny" / "pseudo_labels.zarr"))
    # a stripe is 6 columns; one under min_pixels joins its neighbour: at most 11
    assert before > 11 >= after > 0, (before, after)
    narrower = copy.deepcopy(config)
    narrower["pseudo_labels"]["stripes"] = {"stripe": 3}
    assert planned_rules(snakemake(run, narrower, "-n", pythonpath=path)) - {"all"} == feeds
    assert "Nothing to be done" in snakemake(run, config, "-n", pythonpath=path).stdout

    listed = subprocess.run(
        [sys.executable, "-m", "spino", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert "  stripes         spino-toy-fusion 0.1.0" in listed.stdout.splitlines()
