"""The one registry of head kinds: the workflow's head rules, ``spino train-head``, the checkpoint
labels and the report's loss curves read it. Each kind is a class of its own module in this package
(``semantic.py``, ``boundary.py``, ``embedding.py``; a ``HeadKindTraining``) saying what the head
learns: its channels, output size, target and loss; the entry here names it, says what a checkpoint
of it holds and which fusions need it, and is trained from config section ``<kind>_head``.

A new kind is one module with its class, one registration and its schema section. The entries
name their classes ("module:Class") and load them only when a head trains, so that the workflow,
which plans with this registry, loads no torch (a plug-in may register the class itself).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from spino.checkpoint import register_checkpoint_kind
from spino.registry import Registry


@dataclass(frozen=True)
class HeadKind:
    description: str  # what a checkpoint of it holds, in an error message
    training: str | type  # its HeadKindTraining, or "module:Class" naming it (loaded when a head trains)
    fusions: tuple[str, ...] | None = None  # the pseudo_labels.fusion methods that need it (None: every run with heads)

    def training_class(self) -> type:
        if isinstance(self.training, type):
            return self.training
        module, name = self.training.split(":")
        return getattr(importlib.import_module(module), name)


class HeadKinds(Registry[HeadKind]):
    """The head kinds; registering one also registers its checkpoint kind (what its files hold)."""

    def register(self, name: str, entry: HeadKind) -> HeadKind:  # an entry, never the decorator form
        register_checkpoint_kind(name, entry.description)
        return super().register(name, entry)


HEAD_KINDS = HeadKinds("head kind", group="spino.head_kinds")
HEAD_KINDS.register("semantic", HeadKind("a semantic head", "spino.labelgen.head_kinds.semantic:SemanticHead"))
HEAD_KINDS.register("boundary", HeadKind("a boundary head", "spino.labelgen.head_kinds.boundary:BoundaryHead"))
HEAD_KINDS.register(
    "embedding",
    HeadKind("an embedding head", "spino.labelgen.head_kinds.embedding:EmbeddingHead", fusions=("embedding",)),
)


def heads_trained(fusion: str) -> list[str]:
    """The heads a run with this fusion method trains, in training order."""
    return [name for name, kind in HEAD_KINDS.items() if kind.fusions is None or fusion in kind.fusions]
