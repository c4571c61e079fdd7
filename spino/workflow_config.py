"""The workflow's config check: spino.config.check_config with the registries loaded (spino.choices),
then the files the config names. Only the Snakefile imports this (no command's code digest includes it)."""

from __future__ import annotations

import sys
from pathlib import Path

from spino.choices import check_config
from spino.data.unlabelled import unlabelled_files
from spino.errors import InputError
from spino.weight_sources import weights_file

__all__ = ["check_config", "check_config_or_exit"]


def check_config_or_exit(config: dict, inputs: bool = True) -> dict:
    """The checked config; a wrong one ends Snakemake with its errors, one line each, and no
    traceback (Snakemake would print the Snakefile's line and three frames of ours). With ``inputs``,
    also the files it names must exist."""
    try:
        config = check_config(config)
    except InputError as err:
        sys.exit(f"spino: the config is not valid:\n{err}")
    problems = missing_inputs(config) if inputs else []
    if problems:
        sys.exit("spino: " + "\nspino: ".join(problems))
    return config


def missing_inputs(config: dict) -> list[str]:
    """Files the config names that do not exist (the dataset root, a weights file): found when the
    workflow is planned, not when a job that reads them fails."""
    problems = []
    dataset = config["dataset"]
    if dataset["kind"] != "demo" and not Path(dataset["root"]).is_dir():
        problems.append(f"{dataset['root']}: dataset.root is not a folder")
    try:
        unlabelled_files(dataset["unlabelled"])
    except InputError as err:
        problems.append(str(err))
    weights = weights_file(config["backbone"]["weights"])
    if weights is not None and not weights.is_file():
        problems.append(
            f"{weights}: backbone.weights file not found (`spino fetch-weights --name {config['backbone']['name']} --out {weights}` writes it)"
        )
    return problems
