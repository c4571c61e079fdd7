"""The workflow's config check: spino.config.check_config with the registries loaded (spino.choices),
then the files the config names. Only the Snakefile imports this (no command's code digest includes it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spino.choices import check_config
from spino.data.corrections import export_file
from spino.data.io import atomic_path
from spino.data.unlabelled import unlabelled_files
from spino.errors import InputError
from spino.provenance import text_digest
from spino.weight_sources import weights_file

__all__ = ["check_config", "check_config_or_exit", "settings_file"]


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
    for export in config["annotation"]["corrections"]:
        try:
            export_file(export)
        except InputError as err:
            problems.append(str(err))
    weights = weights_file(config["backbone"]["weights"])
    if weights is not None and not weights.is_file():
        problems.append(
            f"{weights}: backbone.weights file not found (`spino fetch-weights --name {config['backbone']['name']} --out {weights}` writes it)"
        )
    return problems


def settings_file(folder: str | Path, name: str, value: object) -> str:
    """``<folder>/<name>-<digest>.json`` holding ``value``, which the workflow passes to a command in
    place of the JSON itself: a changed setting is a changed path (a changed param, so the rule
    reruns), and a job's shell command stays one line long. Written once, whole, never rewritten, so
    a job reading it sees the bytes of the plan that named it."""
    text = json.dumps(value, sort_keys=True, indent=1) + "\n"
    path = Path(folder) / f"{name}-{text_digest(text)[:12]}.json"
    if not path.is_file():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)
