"""The one list of head kinds: the workflow's head rules, ``spino train-head``, the checkpoint
labels and the report's loss curves read it. Each kind is trained from its config section
``<kind>_head`` (schema) by spino.labelgen.train."""

from __future__ import annotations

from dataclasses import dataclass

from spino.checkpoint import register_checkpoint_kind


@dataclass(frozen=True)
class HeadKind:
    description: str  # what a checkpoint of it holds, in an error message
    fusions: tuple[str, ...] | None = None  # the pseudo_labels.fusion methods that need it (None: every run with heads)


HEAD_KINDS: dict[str, HeadKind] = {
    "semantic": HeadKind("a semantic head"),
    "boundary": HeadKind("a boundary head"),
    "embedding": HeadKind("an embedding head", fusions=("embedding",)),
}


for _name, _kind in HEAD_KINDS.items():
    register_checkpoint_kind(_name, _kind.description)


def heads_trained(fusion: str) -> list[str]:
    """The heads a run with this fusion method trains, in training order."""
    return [name for name, kind in HEAD_KINDS.items() if kind.fusions is None or fusion in kind.fusions]
