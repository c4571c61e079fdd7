"""Unlabelled images kept outside the dataset's own folders (config ``dataset.unlabelled``).

A Label Studio or Roboflow export holds only the images that were labelled; the robot's other
frames sit in a folder of their own. Each entry of ``dataset.unlabelled`` is a folder (searched
recursively), a glob or a file; its images join the annotation split unlabelled: pseudo-labelled
and trained on, never scored. The same image found twice (a raw frame and the export's copy of it,
which Label Studio renames ``<hash>-<name>``) is taken once, the dataset's copy, by its bytes.
"""

from __future__ import annotations

import glob
import hashlib
from collections import defaultdict
from pathlib import Path

from spino.data.base import Record
from spino.data.folder import IMAGE_EXTENSIONS
from spino.errors import InputError, MissingFileError


def unlabelled_files(specs: list[str]) -> list[Path]:
    """The image files the entries name (folders recursively, globs, files), each once, in the
    entries' order and sorted within each; an entry that names no image is an error."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p) and not _hidden(p, path))
        elif path.is_file():
            if not is_image(path):
                raise InputError(f"dataset.unlabelled: {path}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
            files = [path]
        elif glob.has_magic(spec):
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_image(Path(p)) and Path(p).is_file())
        else:
            raise MissingFileError(f"dataset.unlabelled: {path}: not found")
        if not files:
            raise MissingFileError(f"dataset.unlabelled: {spec}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        found += files
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def add_unlabelled(records: list[Record], specs: list[str], split: str) -> tuple[list[Record], str | None]:
    """``records`` and, in split ``split``, a record per image of ``specs`` that is not one of them by
    its bytes (nor an earlier one of ``specs``); and a line saying what was added and what was
    taken once, None where ``specs`` is empty. Ids are file stems; build_manifest names clashes."""
    if not specs:
        return records, None
    known = [Path(r.image) for r in records]
    in_dataset = {p.resolve() for p in known}
    files = [p for p in unlabelled_files(specs) if p.resolve() not in in_dataset]
    first_of = _first_copies(known + files)
    added = [Record(p.stem, split, str(p)) for p in files if first_of[p] == p]
    twice = [(p, first_of[p]) for p in files if first_of[p] != p]
    line = f"dataset.unlabelled: {len(added)} images added to split {split!r} unlabelled"
    if twice:
        shown = ", ".join(f"{p} (= {original})" for p, original in twice[:3]) + (" ..." if len(twice) > 3 else "")
        line += f"; {len(twice)} found again and taken once: {shown}"
    return sorted(records + added, key=lambda r: (r.split, r.image_id)), line


def _first_copies(paths: list[Path]) -> dict[Path, Path]:
    """Each path's first path with the same bytes (itself where none comes before it). Only files of
    equal size are hashed, so a folder of distinct frames costs a stat each."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for p in paths:
        by_size[p.stat().st_size].append(p)
    first = {p: p for p in paths}
    for group in by_size.values():
        if len(group) < 2:
            continue
        seen: dict[str, Path] = {}
        for p in group:
            first[p] = seen.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), p)
    return first


def is_image(path: Path) -> bool:
    """Whether a file name is of an image spino reads (by its suffix)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
