"""spino's checkpoints: written atomically, read safely (``weights_only``), and labelled by kind.

Every checkpoint holds a ``kind`` entry and what that kind is in words (``holds``), so that a file
given in the wrong place (a head where a panoptic model is expected, a log file, a truncated
download) fails with one line that names the file and says what it holds, instead of a traceback
from deep inside ``torch.load``. The kinds are registered by the modules that write them (heads,
training states, the panoptic model, PriMaPs): this module sits below all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spino.data.io import atomic_path
from spino.errors import InputError, MissingFileError

KINDS: dict[str, str] = {}  # checkpoint kind -> what a file of it holds, in words
Upgrade = Callable[[dict], dict]
KIND_UPGRADES: dict[tuple[str, int], Upgrade] = {}  # (kind, format) -> its owner's step to the next format

# The layout of the checkpoint dict. A change to it (a renamed entry, a moved setting) raises FORMAT
# and adds the step from the previous layout to UPGRADES, as timm's checkpoint_filter_fn does, so
# that models users trained before still load; a step that concerns one kind's payload is registered
# by the kind's owner. Format 0: the files of spino 0.1.0 before versions; 1: files say what they hold;
# 2: the panoptic model's instance method holds its own settings.
FORMAT = 2


def _holds_what_it_is(state: dict) -> dict:
    """0 -> 1: the file says what it holds (before, only the reader's table did)."""
    return {**state, "holds": KINDS.get(state["kind"], f"a {state['kind']} checkpoint")}


def _unchanged(state: dict) -> dict:
    return state


UPGRADES: dict[int, Upgrade] = {0: _holds_what_it_is, 1: _unchanged}  # format -> the step to the next one


def register_checkpoint_kind(kind: str, description: str, upgrades: dict[int, Upgrade] | None = None) -> None:
    """A kind of checkpoint its owner writes and reads (``description``: "a semantic head"), with the
    steps that bring its payload from an older format (format -> step to the next)."""
    KINDS[kind] = description
    for version, step in (upgrades or {}).items():
        KIND_UPGRADES[kind, version] = step


def save_checkpoint(path: str | Path, kind: str, payload: dict) -> None:
    """Write ``payload`` labelled as ``kind`` (a temporary file renamed into place)."""
    import torch  # here, not at the top: the workflow imports the head kinds, which register here

    assert kind in KINDS, kind
    with atomic_path(path) as tmp:
        torch.save(on_cpu({"kind": kind, "holds": KINDS[kind], "format": FORMAT, **payload}), tmp)


def on_cpu(value):
    """``value`` with every tensor in it (nested dicts, lists, tuples: optimizer states too) moved to
    the CPU: a model trained on a GPU loads with a plain ``torch.load`` on a machine without one."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


def load_checkpoint(path: str | Path, *kinds: str) -> dict:
    """The checkpoint at ``path``, which must be of one of ``kinds``; raises naming the file otherwise."""
    import torch

    path = Path(path)
    wanted = " or ".join(KINDS[k] for k in kinds)
    if not path.is_file():
        raise MissingFileError(f"{path}: checkpoint not found (expected {wanted})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for files that are no checkpoint
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: not a spino checkpoint, cannot be read by torch.load ({reason[:200]})") from err
    kind = state.get("kind") if isinstance(state, dict) else None
    if not isinstance(kind, str):
        raise InputError(f"{path}: expected {wanted}, but the file holds no spino checkpoint")
    state = upgraded(state, path)
    if kind not in kinds:
        raise InputError(f"{path}: expected {wanted}, but the file holds {state['holds']}")
    return state


def upgraded(state: dict, path: str | Path) -> dict:
    """A checkpoint in today's layout, whatever spino version wrote it (the UPGRADES steps, in order)."""
    version = state.get("format", 0)
    if version > FORMAT:
        raise InputError(
            f"{path}: written by a newer spino (checkpoint format {version}; this one reads up to {FORMAT}); upgrade spino"
        )
    for step in range(version, FORMAT):
        state = UPGRADES[step](state)
        state = KIND_UPGRADES.get((state["kind"], step), _unchanged)(state)
    return {**state, "format": FORMAT}
