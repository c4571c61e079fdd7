"""Options several commands share, each defined once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spino.data import DATASET_KINDS, Dataset, Record
from spino.data import open_dataset as open_kind
from spino.data.unlabelled import add_unlabelled
from spino.errors import InputError


def add_dataset(p: argparse.ArgumentParser) -> None:
    """The options that open a dataset (config ``dataset``)."""
    p.add_argument("--dataset-kind", required=True, help=", ".join(DATASET_KINDS))
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--classes", default=None, help="class set name or YAML (folder datasets)")
    p.add_argument(
        "--things", nargs="*", default=None, help="coco: the thing categories, where the categories lack isthing"
    )
    p.add_argument("--splits", nargs="+", default=None, help="splits to use (default: all)")


def open_dataset(args: argparse.Namespace) -> Dataset:
    return open_kind(args.dataset_kind, args.dataset_root, args.splits, args.classes, args.things)


def add_unlabelled_images(p: argparse.ArgumentParser) -> None:
    """More unlabelled images outside the dataset (config ``dataset.unlabelled``), for the commands
    that list the dataset's images themselves (index, features, suggest)."""
    p.add_argument(
        "--unlabelled", nargs="*", default=[], metavar="PATH", help="folders (recursive), globs or files of images"
    )
    p.add_argument(
        "--unlabelled-split",
        default=None,
        help="the split they join (config annotation.split; default: --annotate-split or train)",
    )


def dataset_records(args: argparse.Namespace, dataset: Dataset | None = None) -> tuple[list[Record], str | None]:
    """The dataset's records with the --unlabelled images added, and the line saying what was added."""
    split = args.unlabelled_split or getattr(args, "annotate_split", None) or "train"
    return add_unlabelled((dataset or open_dataset(args)).scan(), args.unlabelled, split)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", type=_device, help="auto (a GPU when there is one), cpu, cuda or cuda:N")


def _device(text: str) -> str:
    """An argparse type: a device name spino knows (whether that device exists is checked when used)."""
    from spino.devices import check_device_name

    try:
        return check_device_name(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[1]) from err


def add_settings(p: argparse.ArgumentParser, option: str, section: str, required: bool = True) -> None:
    """A config section, as JSON or a JSON file (the workflow passes each rule its section's file)."""
    p.add_argument(
        option, required=required, type=settings_json, help=f"settings as JSON, or a JSON file (config {section})"
    )


def settings_json(text: str) -> dict:
    """An argparse type: JSON given inline (``{...}``) or the path of a file holding it."""
    if text.lstrip().startswith("{"):
        return json.loads(text)
    path = Path(text)
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{path}: cannot be read ({err.strerror})") from err
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{path}: not valid JSON ({err})") from err


def add_manifest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="the run's manifest (spino index)")


def add_shard(p: argparse.ArgumentParser, done_help: str = "marker file written when the shard is complete") -> None:
    """The store and shard a shard job writes, and its done-marker."""
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--done", type=Path, help=done_help)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
