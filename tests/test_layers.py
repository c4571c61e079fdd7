"""The layers contract of pyproject.toml ([tool.importlinter]) holds, and it is not a contract that
holds for anything: an upward import, added to a copy of the package, breaks it."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_parent,
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize(
    ("module", "imported", "message"),
    [
        ("store", "spino.commands.index", "spino.store is not allowed to import spino.commands"),
        # inside what was one floor of twelve: the stores sit below what reads and writes them
        ("store", "spino.export", "spino.store is not allowed to import spino.export"),
        # inside what was the ground floor of ten: the config below the registries, errors below all
        ("config", "spino.registry", "spino.config is not allowed to import spino.registry"),
        ("errors", "spino.classes", "spino.errors is not allowed to import spino.classes"),
        # floor-mates that must not import each other
        ("report", "spino.review", "spino.report is not allowed to import spino.review"),
    ],
)
def test_the_layers_hold_and_an_upward_import_breaks_them(
    tmp_path: Path, module: str, imported: str, message: str
) -> None:
    assert lint_imports(REPO).returncode == 0
    shutil.copytree(REPO / "spino", tmp_path / "spino", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "spino" / f"{module}.py"
    path.write_text(path.read_text() + f"\nimport {imported}  # an upward import, on purpose\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert message in broken.stdout, broken.stdout[-2000:]


def test_planning_the_workflow_loads_no_torch_zarr_or_scipy() -> None:
    """What the Snakefile and its rule files import stays light: every `snakemake` (a dry run too)
    parses them; torch alone costs a second or two of it, zarr and scipy 0.2 s each (the registries
    import them only where they are used)."""
    imported = sorted(
        line.split()[1]
        for path in [REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
        for line in path.read_text().splitlines()
        if line.startswith("from spino")
    )
    assert "spino.workflow_config" in imported and "spino.labelgen.head_kinds" in imported
    heavy = ("torch", "timm", "zarr", "scipy")
    code = f"import sys\nfor m in {imported!r}: __import__(m)\nprint([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("registry", "command"),
    [
        ("spino.labelgen.head_kinds:HEAD_KINDS", "spino.commands.train_head"),
        ("spino.panoptic.instances:INSTANCE_METHODS", "spino.commands.train_panoptic"),
        ("spino.labelgen.labellers:LABELLERS", "spino.commands.pseudo_label"),
    ],
)
def test_a_command_digest_follows_lazy_references_to_the_classes_it_runs(registry: str, command: str) -> None:
    """The torch-free registries name their classes as "spino.module:Class" strings (loaded when used):
    the code digest of the command that uses them covers those modules all the same, so that editing
    one reruns its jobs; `spino index` runs none of them."""
    from spino.provenance import module_closure

    module, name = registry.split(":")
    entries = getattr(importlib.import_module(module), name)
    classes = {entry.implementation.split(":")[0] for entry in entries.values()}
    assert classes <= set(module_closure([command]))
    assert not classes & set(module_closure(["spino.commands.index"]))


def test_a_command_digest_sees_every_form_of_import_and_no_prose() -> None:
    """Import statements are found by a pattern and parsed one by one: a from-import over several
    lines, a function-local import, a plain import and a lazy reference all count; prose that only
    starts like an import, and modules outside spino, do not."""
    from spino.provenance import _imports

    source = '''"""Docstring.
from the store import what it needs, which is prose
"""
import numpy as np
import spino.encoding
from spino.data import (
    cityscapes,
    io,
)


def f():
    from spino.labelgen import ncut  # function-local

    return "spino.metrics.panoptic:PanopticStats"
'''
    assert _imports(source) == {
        "spino",
        "spino.encoding",
        "spino.data",
        "spino.data.cityscapes",
        "spino.data.io",
        "spino.labelgen",
        "spino.labelgen.ncut",
        "spino.metrics",
        "spino.metrics.panoptic",
    }
