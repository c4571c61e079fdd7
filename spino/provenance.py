"""Content digests, so that cached artifacts follow what they were made from, not paths or mtimes.

- ``file_digest``: sha256 of a file's bytes (shards, manifests, checkpoints).
- ``command_code_digest``: one digest of the code a ``spino`` subcommand runs: its module
  ``spino/commands/<name>.py`` plus every spino module reachable from its imports, found by
  reading the sources, never by importing them. The workflow
  passes it to each rule as a param: editing a helper reruns exactly the rules that run it, and
  a checkout moved or cloned elsewhere plans nothing (module names, not paths, enter the digest).
- ``listing_digest``: names, sizes and mtimes of a dataset's files, so adding, removing or editing
  an image or label reruns the index.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGE = PACKAGE_ROOT.name


def file_digest(path: str | Path, block: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def text_digest(*parts: str) -> str:
    """sha256 (hex, 16 characters) of strings, kept apart by a separator."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def module_path(module: str) -> Path | None:
    """The source file of a spino module (a package's ``__init__.py``), or None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# A registry entry that loads its class when used names it as "spino.module:Class" (a head kind's
# training): such a reference counts as an import, so that editing that module reruns what uses it.
LAZY_REFERENCE = re.compile(r"""["'](spino(?:\.\w+)+):\w+["']""")
# Import statements (also function-local ones; a from-import may run over lines in parentheses) are
# found by this pattern and each parsed by ast: parsing whole modules cost 0.25 s of every
# `snakemake` call. A line of prose that only looks like an import does not parse and is skipped.
IMPORT_STATEMENT = re.compile(
    r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.M
)


def _imports(source: str) -> set[str]:
    """spino modules named by the import statements of ``source`` and by its lazy references."""
    found = set(LAZY_REFERENCE.findall(source))
    for match in IMPORT_STATEMENT.finditer(source):
        try:
            statements = ast.parse(match.group(0).strip()).body
        except SyntaxError:
            continue
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    modules = set()
    for name in found:
        parts = name.split(".")
        # importing a.b.c runs the __init__ of a and a.b too
        modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in modules if module_path(m) is not None}


@cache
def module_imports(module: str) -> frozenset[str]:
    """spino modules that a module's source imports (directly)."""
    path = module_path(module)
    assert path is not None, module
    return frozenset(_imports(path.read_text()))


def module_closure(modules: Iterable[str]) -> list[str]:
    """Every spino module reachable from ``modules`` through imports, sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(module_imports(module) - seen)
    return sorted(seen)


@cache
def command_code_digest(command: str) -> str:
    """Digest of the code that ``spino <command>`` runs: its module in spino.commands and every spino
    module reachable from its imports (also function-local ones), by name and source."""
    module = f"{PACKAGE}.commands.{command.replace('-', '_')}"
    if module_path(module) is None:
        raise KeyError(f"spino has no subcommand {command!r}")
    parts = []
    for name in module_closure([module]):
        parts += [name, module_path(name).read_text()]  # type: ignore[union-attr]
    return text_digest(*parts)


def listing_digest(paths: Iterable[str | Path], root: str | Path) -> str:
    """Digest of the names (relative to ``root``), sizes and mtimes of files; missing ones count as missing."""
    rows = []
    for path in sorted(str(p) for p in paths):
        try:
            st = os.stat(path)
            rows.append(f"{os.path.relpath(path, root)} {st.st_size} {st.st_mtime_ns}")
        except FileNotFoundError:
            rows.append(f"{os.path.relpath(path, root)} missing")
    return text_digest(*rows)
