"""The ``spino`` command as a user meets it: a light --help with grouped commands, --version, global
options on either side of the subcommand, defaults in every help text, one line for each mistake."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from spino.cli import build_parser, command_modules, command_summaries, main


def test_help_imports_no_command_module_and_groups_the_commands() -> None:
    """The list comes from the modules' source (their HELP and GROUP), so --help loads neither the
    commands nor torch (it took 4.7 s of CPU when it imported them all)."""
    code = (
        "import sys, contextlib, io\n"
        "from spino.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('spino.commands.') or m == 'torch')\n"
        "print(repr(loaded)); print(out.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, text = result.stdout.split("\n", 1)
    assert loaded == "[]"
    tools, steps = text.split("your data and trained models:")[1].split("workflow steps")
    assert "  init " in tools and "  segment " in tools and "  export-model " in tools
    assert "  index " in steps and "  train-panoptic " in steps and "  segment " not in steps
    assert set(command_summaries()) == set(command_modules()) and len(command_modules()) == 24
    assert "  review " in tools and "  plugins " in tools


def test_version(capsys) -> None:
    from spino import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"spino {__version__}"


def test_global_options_before_or_after_the_subcommand() -> None:
    parser = build_parser("info")
    assert parser.parse_args(["info", "s.zarr", "--traceback", "--threads", "3"]).traceback is True
    assert parser.parse_args(["--traceback", "--threads", "3", "info", "s.zarr"]).threads == 3
    before = parser.parse_args(["--threads", "3", "info", "s.zarr"])
    assert before.threads == 3 and before.traceback is False  # not undone by the subcommand's own copy
    assert parser.parse_args(["info", "s.zarr"]).threads is None


@pytest.mark.parametrize("command", sorted(command_modules()))
def test_every_help_shows_the_defaults(command: str) -> None:
    parser = build_parser(command)
    sub = parser._subparsers._group_actions[0].choices[command]  # argparse keeps the subparsers here
    text = sub.format_help()
    for action in sub._actions:
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            assert "default" in (action.help or ""), (command, action.dest)
    assert "--traceback" in text and "--threads" in text


def test_the_formats_defaults_are_visible() -> None:
    """spino segment writes COCO by default, spino export gtFine: both helps now say so."""

    def help_of(command: str) -> str:
        return build_parser(command)._subparsers._group_actions[0].choices[command].format_help()

    assert "(default: coco)" in help_of("segment")
    assert "(default: gtfine)" in help_of("export")


def _one_line_error(argv: list[str], capsys) -> str:
    try:
        rc = main(argv)
    except SystemExit as exit:  # argparse's own errors: usage, then one line
        rc = exit.code
    assert rc in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_a_device_that_is_not_one_is_one_line(capsys) -> None:
    line = _one_line_error(["segment", "m.pt", "x.png", "--out", "o", "--device", "gpu"], capsys)
    assert line == "spino segment: error: argument --device: expected auto, cpu, cuda or cuda:N"


def test_a_gpu_asked_for_where_there_is_none_is_one_line(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    line = _one_line_error(
        ["predict", "--store", "s", "--shard", "0", "--checkpoint", "m", "--device", "cuda:3"], capsys
    )
    assert line == "spino predict: error: --device cuda:3: no CUDA GPU is visible here; use --device cpu (or auto)"


def test_a_path_through_a_file_is_one_line(capsys) -> None:
    line = _one_line_error(["make-demo", "--out", "/dev/null/x"], capsys)
    assert line.startswith("spino make-demo: error: /dev/null/x") and line.endswith(
        "a part of the path is a file, not a folder (choose another path)"
    )


def test_files_written_through_a_replacing_writer_get_the_usual_permissions(tmp_path: Path) -> None:
    """safetensors replaces the file it is given with a 0600 one; results read like any other file."""
    import torch
    from safetensors.torch import save_file

    from spino.data.io import atomic_path

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "m.safetensors") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o644
