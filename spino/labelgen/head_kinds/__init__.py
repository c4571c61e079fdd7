"""The one registry of head kinds: the workflow's head rules, ``spino train-head``, the checkpoint
labels and the report's loss curves read it. Each kind is a class of its own module in this package
(``semantic.py``, ``boundary.py``, ``embedding.py``; a ``HeadKindTraining``) saying what the head
learns: its channels, output size, target and loss; the entry here names it, says what a checkpoint
of it holds and which fusions need it, and is trained from config section ``<kind>_head``.

A new kind is one module with its class, one entry here and its schema section. The entries load
their classes only when a head trains, so that the workflow, which plans with this registry, loads
no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from spino.checkpoint import register_checkpoint_kind


@dataclass(frozen=True)
class HeadKind:
    description: str  # what a checkpoint of it holds, in an error message
    training: str  # "module:Class" of its HeadKindTraining
    fusions: tuple[str, ...] | None = None  # the pseudo_labels.fusion methods that need it (None: every run with heads)

    def training_class(self) -> type:
        module, name = self.training.split(":")
        return getattr(importlib.import_module(module), name)


HEAD_KINDS: dict[str, HeadKind] = {
    "semantic": HeadKind("a semantic head", "spino.labelgen.head_kinds.semantic:SemanticHead"),
    "boundary": HeadKind("a boundary head", "spino.labelgen.head_kinds.boundary:BoundaryHead"),
    "embedding": HeadKind(
        "an embedding head", "spino.labelgen.head_kinds.embedding:EmbeddingHead", fusions=("embedding",)
    ),
}


for _name, _kind in HEAD_KINDS.items():
    register_checkpoint_kind(_name, _kind.description)


def heads_trained(fusion: str) -> list[str]:
    """The heads a run with this fusion method trains, in training order."""
    return [name for name, kind in HEAD_KINDS.items() if kind.fusions is None or fusion in kind.fusions]
