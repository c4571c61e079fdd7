"""The ``spino`` command: one subcommand per workflow step, plus tools to inspect and export stores.

Each subcommand lives in ``spino/commands/<name>.py``. Workflow rules call them; every option maps
onto a config key (config/README.md). Errors in the input, and a full disk or a path it may not
write, end the command with one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spino import commands
from spino.errors import InputError, environment_error


def command_modules() -> dict[str, str]:
    """Subcommand name -> module, for every module of spino.commands (``make_demo`` is ``make-demo``)."""
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return {name.replace("_", "-"): f"{commands.__name__}.{name}" for name in names}


def global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; given the subcommand, only that one's module is imported (a job starts faster)."""
    parser = argparse.ArgumentParser(prog="spino", description=__doc__.splitlines()[0])
    global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in command_modules().items():
        if command not in (None, name):
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


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
        return 1
    return 0


def _message(err: Exception) -> str:
    """The error's own message, also when a DataLoader worker raised it (PyTorch then wraps the
    worker's traceback into the message; its last line is ``module.ErrorType: message``)."""
    text = str(err)
    if "\nOriginal Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text
