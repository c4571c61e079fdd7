"""The ``spino`` command: tools for users (``init``, ``segment``, ``export-model`` ...) and one
subcommand per workflow step.

Each subcommand lives in ``spino/commands/<name>.py`` (``HELP``, optionally ``GROUP = "tool"``,
``add_arguments`` and ``run``). ``spino --help`` reads those names from the modules' source and
imports none of them; a subcommand imports only its own module. Workflow rules call the steps; every
option maps onto a config key (config/README.md). Errors in the input, and a full disk or a path it
may not write, end the command with one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import sys
import traceback
from functools import cache
from pathlib import Path

from spino import __version__, commands
from spino.errors import InputError, environment_error

GROUPS = {"tool": "your data and trained models", "step": "workflow steps (the Snakemake rules run these)"}


@cache
def command_modules() -> dict[str, str]:
    """Subcommand name -> module, for every module of spino.commands (``make_demo`` is ``make-demo``)."""
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return {name.replace("_", "-"): f"{commands.__name__}.{name}" for name in names}


@cache
def command_summaries() -> dict[str, tuple[str, str]]:
    """Subcommand name -> (group, help), read from each module's ``GROUP`` and ``HELP`` constants
    without importing it (most commands import torch: seconds of CPU for a --help)."""
    summaries = {}
    for name, module in command_modules().items():
        path = Path(commands.__path__[0]) / f"{module.rsplit('.', 1)[1]}.py"
        constants = {
            node.targets[0].id: node.value.value
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
        }
        summaries[name] = (constants.get("GROUP", "step"), constants["HELP"])
    return summaries


def global_options(parser: argparse.ArgumentParser, default=None) -> None:
    """Options of every command, accepted before or after the subcommand's name (after it, their
    default is argparse.SUPPRESS so that they do not undo one given before)."""
    parser.add_argument(
        "--traceback", action="store_true", default=default or False, help="show the full traceback on errors"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        help="CPU threads for PyTorch (default: all cores); make-demo: processes rendering images",
    )


def _overview() -> str:
    lines = []
    for group, title in GROUPS.items():
        lines.append(f"{title}:")
        lines += [f"  {name:<16}{text}" for name, (g, text) in command_summaries().items() if g == group]
        lines.append("")
    return "\n".join(lines) + "Run `spino COMMAND --help` for a command's options."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; given the subcommand, only that one's module is imported (a job starts faster)."""
    parser = argparse.ArgumentParser(
        prog="spino",
        description="Few-shot panoptic segmentation with foundation models (SPINO) as staged artifacts.",
        epilog=_overview(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"spino {__version__}")
    global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help="one of those below")
    for name, module_name in command_modules().items():
        if command != name:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        global_options(p, default=argparse.SUPPRESS)
        show_defaults(p)
        p.set_defaults(func=module.run)
    return parser


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's default in its help text (where it has one worth showing)."""
    for action in parser._actions:
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        if action.help and ("default" in action.help or action.help == argparse.SUPPRESS):
            continue
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        action.help = f"{action.help or ''} (default: {shown})".strip().replace("%", "%%")


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (None for ``spino --help``)."""
    pre = argparse.ArgumentParser(add_help=False)
    global_options(pre)
    _, rest = pre.parse_known_args(argv)
    return rest[0] if rest and rest[0] in command_modules() else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_command(argv)).parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (InputError, OSError) as err:  # a user's mistake or the machine's: one line; anything else is a bug
        message = err if isinstance(err, InputError) else environment_error(err)
        if args.traceback or message is None:
            raise
        print(f"spino {args.command}: error: {_message(message)}", file=sys.stderr)
        # The traceback's frames hold what the command had open (a DataLoader's worker processes):
        # cleared now, those close at once. Left to the garbage collector, a DataLoader's queues
        # close before it, and its workers wait out their timeouts (10 s after a bad image).
        traceback.clear_frames(err.__traceback__)
        return 1
    return 0


def _message(err: Exception) -> str:
    """The error's own message, also when a DataLoader worker raised it (PyTorch then wraps the
    worker's traceback into the message; its last line is ``module.ErrorType: message``)."""
    text = str(err)
    if "\nOriginal Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text
