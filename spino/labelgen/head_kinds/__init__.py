"""The one registry of head kinds: the workflow's head rules, ``spino train-head``, the labeller, the
checkpoint labels and the report's loss curves read it. Each kind is a class of its own module in
this package (``semantic.py``, ``boundary.py``, ``embedding.py``; a ``HeadKindTraining``) saying what
the head learns: its channels, output size, target and loss. Its entry here (a ``HeadKind``) names
that class, holds its settings (config section ``<kind>_head``, an ``@owned`` class stating their
schema), says what a checkpoint of it holds and which fusions need it.

A new kind is its module and its entry here (or, out of the tree, a plugin's entry point
``spino.head_kinds`` naming a ``HeadKind``). The entries are torch-free: the workflow, which plans
with this registry, loads no torch; a kind's class is imported when a head of it trains or labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from spino.checkpoint import register_checkpoint_kind
from spino.config import load, owned
from spino.registry import Extension, Registry


@dataclass(frozen=True, kw_only=True)
class HeadKind(Extension):
    """A head kind: ``implementation`` its HeadKindTraining, ``settings`` a ``HeadSettings`` subclass."""

    description: str  # what a checkpoint of it holds, in an error message
    fusions: tuple[str, ...] | None = None  # the pseudo_labels.fusion methods that need it (None: every run with heads)


class HeadSettings:
    """What every head kind's settings hold (each kind's ``@owned`` subclass states their schema and
    defaults, with ``head_properties``, and adds its own); ``kind`` is its registry name, not a setting."""

    kind: str
    hidden: tuple[int, ...]
    input_size: tuple[int, int]
    epochs: int
    lr: float
    crop_scale: tuple[float, float]
    color_jitter: float
    seed: int
    output_stride: int  # the MLP runs every output_stride pixels of its output; logits resized (1: the paper)


def head_properties(hidden: list[int], input_size: list[int], epochs: int, crop_scale: list[float]) -> dict:
    """The schema of the settings every head has, with a kind's defaults."""
    return {
        "hidden": {"$ref": "#/definitions/hidden", "default": hidden},
        "input_size": {"$ref": "#/definitions/size", "default": input_size},
        "epochs": {"type": "integer", "minimum": 1, "default": epochs},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 1.0e-3},
        "crop_scale": {"$ref": "#/definitions/unit_range", "default": crop_scale},
        "color_jitter": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.2},
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "output_stride": {
            "type": "integer",
            "minimum": 1,
            "maximum": 16,
            "default": 1,
            "description": "MLP every n pixels, logits resized (1: the paper)",
        },
    }


UPSAMPLE = {"type": "integer", "minimum": 1, "default": 4, "description": "output at this multiple of the features"}


@owned(
    {
        **head_properties([300, 300, 200], [1008, 2016], 50, [0.2, 1.0]),
        "top_k": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.2},
    }
)
class SemanticHeadSettings(HeadSettings):
    top_k: float  # the share of hardest pixels whose cross-entropy is the loss


@owned({**head_properties([600, 600, 400], [1008, 2016], 40, [0.4, 1.0]), "upsample": UPSAMPLE})
class BoundaryHeadSettings(HeadSettings):
    upsample: int


@owned(
    {
        **head_properties([300, 300, 200], [448, 896], 40, [0.4, 1.0]),
        "upsample": UPSAMPLE,
        "dim": {"type": "integer", "minimum": 2, "default": 16},
        "delta_var": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
        "delta_dist": {"type": "number", "exclusiveMinimum": 0, "default": 2.0},
        "instance_fraction": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 1.0,
            "description": "of each annotated image's instances, the share labelled",
        },
        "consistency": {"type": "number", "minimum": 0, "default": 1.0},
        "coordinates": {
            "type": "number",
            "minimum": 0,
            "default": 16.0,
            "description": "pixel position added to two channels, the image this many units across (0: off)",
        },
    }
)
class EmbeddingHeadSettings(HeadSettings):
    """SPOCO's pixel-embedding head, trained on sparsely labelled instances (pseudo_labels.fusion: embedding)."""

    upsample: int
    dim: int  # embedding dimensions
    delta_var: float  # push-pull margins
    delta_dist: float
    instance_fraction: float  # of each annotated image's instances, kept labelled (the rest: unlabelled)
    consistency: float  # weight of the agreement with a flipped, jittered view on unlabelled pixels
    coordinates: float  # > 0: pixel positions added to two channels, the image this many units across


class HeadKinds(Registry[HeadKind]):
    """The head kinds; registering one also registers its checkpoint kind (what its files hold)."""

    def register(self, name: str, entry: HeadKind) -> HeadKind:  # an entry, never the decorator form
        register_checkpoint_kind(name, entry.description)
        return super().register(name, entry)


HEAD_KINDS = HeadKinds("head kind", group="spino.head_kinds", settings="{name}_head")
HEAD_KINDS.register(
    "semantic",
    HeadKind(
        implementation="spino.labelgen.head_kinds.semantic:SemanticHead",
        settings=SemanticHeadSettings,
        description="a semantic head",
    ),
)
HEAD_KINDS.register(
    "boundary",
    HeadKind(
        implementation="spino.labelgen.head_kinds.boundary:BoundaryHead",
        settings=BoundaryHeadSettings,
        description="a boundary head",
    ),
)
HEAD_KINDS.register(
    "embedding",
    HeadKind(
        implementation="spino.labelgen.head_kinds.embedding:EmbeddingHead",
        settings=EmbeddingHeadSettings,
        description="an embedding head",
        fusions=("embedding",),
    ),
)


def heads_trained(fusion: str) -> list[str]:
    """The heads a run with this fusion method trains, in training order."""
    return [name for name, kind in HEAD_KINDS.items() if kind.fusions is None or fusion in kind.fusions]


def head_settings(kind: str, data: dict) -> HeadSettings:
    """A head's settings from config ``<kind>_head`` (validated, defaults filled in); an unknown kind
    fails in one line."""
    return load(HEAD_KINDS.get(kind).settings, data, f"{kind}_head", kind=kind)
