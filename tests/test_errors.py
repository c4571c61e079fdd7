"""Bad input gets one line naming the file and the problem; a bug in spino keeps its traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from spino.checkpoint import save_checkpoint
from spino.classes import DEMO
from spino.cli import main as spino
from spino.errors import InputError

from helpers import REPO, one_line_error, spino_here


def run(*args: str) -> subprocess.CompletedProcess:
    """``spino`` by its entry point in this process: the same one-line errors, without a process start
    (torch's import) per call."""
    return spino_here(*args)


def corrupted_copy(store: Path, tmp_path: Path) -> Path:
    """A copy whose shard 1 of panoptic has a wrong checksum in its index (same size: only reading notices)."""
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(store, copy)
    shard = copy / "panoptic" / "c" / "1" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])
    shard.write_bytes(bytes(data))
    return copy


def test_corrupt_chunk_names_store_array_and_shard(gt_store: Path, tmp_path: Path) -> None:
    damaged = corrupted_copy(gt_store, tmp_path)
    result = run(
        "evaluate",
        str(damaged),
        "--gt",
        str(gt_store),
        "--json",
        str(tmp_path / "s.json"),
        "--csv",
        str(tmp_path / "s.csv"),
    )
    one_line_error(result, "evaluate", f"{damaged}: panoptic of shard 1 (panoptic/c/1/0/0) cannot be read", "checksum")
    assert not (tmp_path / "s.json").exists()


def test_failed_export_leaves_nothing_behind(gt_store: Path, tmp_path: Path) -> None:
    damaged = corrupted_copy(gt_store, tmp_path)
    out = tmp_path / "exports" / "gtfine"
    result = run("export", str(damaged), "--format", "gtfine", "--out", str(out))
    one_line_error(result, "export", "shard 1")
    assert not out.exists() and list((tmp_path / "exports").iterdir()) == []
    taken = tmp_path / "taken"
    (taken / "mine.txt").parent.mkdir()
    (taken / "mine.txt").write_text("a file of the user's")
    one_line_error(
        run("export", str(gt_store), "--out", str(taken)), "export", f"{taken}: already exists and is not empty"
    )
    assert (taken / "mine.txt").read_text() == "a file of the user's"


@pytest.mark.slow
def test_checkpoint_errors_say_what_the_file_is(gt_store: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    args = ["--store", str(gt_store), "--shard", "0", "--device", "cpu"]
    one_line_error(run("predict", "--checkpoint", str(text), *args), "predict", f"{text}: not a spino checkpoint")
    import spino.labelgen.head_kinds  # noqa: F401  (the owner of the head kinds registers them)

    head = tmp_path / "semantic.pt"
    save_checkpoint(head, "semantic", {"state_dict": {}})
    one_line_error(
        run("predict", "--checkpoint", str(head), *args),
        "predict",
        f"{head}: expected a panoptic model, but the file holds a semantic head",
    )
    one_line_error(
        run("predict", "--checkpoint", str(tmp_path / "missing.pt"), *args), "predict", "checkpoint not found"
    )
    boundary = tmp_path / "boundary.pt"
    save_checkpoint(boundary, "boundary", {"state_dict": {}})
    swapped = run(
        "pseudo-label",
        "--manifest",
        "m.csv",
        "--store",
        str(gt_store),
        "--shard",
        "0",
        "--input",
        f"semantic_head={boundary}",
        "--input",
        f"boundary_head={head}",
        "--settings",
        "{}",
        "--device",
        "cpu",
    )
    one_line_error(swapped, "pseudo-label", f"{boundary}: expected a semantic head, but the file holds a boundary head")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "car", "thing": "false"}, "classes[1].thing: 'false' is not of type 'boolean'"),
        ({"name": "car", "thing": "maybe"}, "classes[1].thing: 'maybe' is not of type 'boolean'"),
        ({"name": "car", "color": [1, 2]}, "classes[1].color: [1, 2] is too short"),
        ({"name": "car", "color": [300, -5, 0]}, "classes[1].color[0]: 300 is greater than the maximum of 255"),
        (
            {"name": "car", "colour": [1, 2, 3]},
            "classes[1]: Additional properties are not allowed ('colour' was unexpected)",
        ),
    ],
)
def test_bad_classes_yaml_is_named_with_the_entry(demo_root: Path, tmp_path: Path, entry: dict, problem: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    classes = {"classes": [{"name": "road", "thing": False, "color": [128, 64, 128]}, entry]}
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    result = run(
        "index", "--dataset-kind", "folder", "--dataset-root", str(root), "--k", "1", "--out", str(tmp_path / "m.csv")
    )
    one_line_error(result, "index", f"{root / 'classes.yaml'}: {problem}")


def test_a_bug_keeps_its_traceback(gt_store: Path, monkeypatch) -> None:
    """Only InputError is a user's mistake; anything else propagates with its traceback."""
    from spino.store import LabelStore

    def broken(self):
        raise ZeroDivisionError("a bug in spino")

    monkeypatch.setattr(LabelStore, "finalize", broken)
    with pytest.raises(ZeroDivisionError, match="a bug in spino"):
        spino(["gather", str(gt_store)])


def test_a_model_written_by_an_earlier_spino_still_loads_and_a_newer_one_is_named(tmp_path: Path) -> None:
    """tests/data/panoptic-model-8a0c86f.pt was written by main at 8a0c86f, before checkpoints had a
    format version: it loads through the upgrade steps and predicts; a file of a newer format than
    this spino reads is refused in one line."""
    import torch

    from spino.checkpoint import FORMAT, load_checkpoint
    from spino.panoptic.saved_model import load_model

    old = REPO / "tests" / "data" / "panoptic-model-8a0c86f.pt"
    raw = torch.load(old, weights_only=True)
    assert "format" not in raw and "holds" not in raw
    state = load_checkpoint(old, "panoptic")
    assert state["format"] == FORMAT and state["holds"] == "a panoptic model"
    model, class_set, _ = load_model(old)
    assert class_set.names == DEMO.names
    for name, value in raw["model"].items():
        assert torch.equal(model.trainable_state()[name], value), name
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 32, 64))
    assert outputs["semantic"].shape[:2] == (1, DEMO.num_classes)
    newer = tmp_path / "newer.pt"
    torch.save({**raw, "kind": "panoptic", "format": FORMAT + 1}, newer)
    with pytest.raises(InputError, match=rf"newer.pt: written by a newer spino \(checkpoint format {FORMAT + 1}"):
        load_checkpoint(newer, "panoptic")
