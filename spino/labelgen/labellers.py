"""The labellers (config ``labelgen``): what labels the pseudo-label store's images. Each entry names
its ``Labeller`` class ("module:Class", imported when a job labels) and the artifacts of the
workflow it labels from; the workflow's inputs of the labelling jobs, ``spino pseudo-label``'s
``--input`` options and ``open_labeller`` are derived from it. A labeller's own settings are config
section ``<its name>`` (PriMaPs: ``primaps``, what ``spino fit-primaps`` fits with). Torch-free: the
workflow plans with it.

A new labeller is a ``Labeller`` subclass and its entry (out of the tree: entry point
``spino.labellers`` naming a ``LabellerKind``), labelling from the artifacts the workflow makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spino.config import owned
from spino.registry import Extension, Registry

if TYPE_CHECKING:
    from spino.labelgen.labeller import Labeller

# The workflow's artifacts a labeller may label from, by name: "heads", the heads the run trains (the
# inputs <kind>_head, the semantic one self-trained where self_training is on; the fusion's heads
# among them); "primaps", the prototypes `spino fit-primaps` fits (the input primaps).
ARTIFACTS = ("heads", "primaps")


@dataclass(frozen=True, kw_only=True)
class LabellerKind(Extension):
    """A labeller: ``implementation`` its Labeller class; ``inputs`` the ARTIFACTS it labels from."""

    inputs: tuple[str, ...]
    label_free: bool = False  # cluster ids, not classes: scored after matching; no instances, no panoptic stages

    def __post_init__(self) -> None:
        unknown = sorted(set(self.inputs) - set(ARTIFACTS))
        if unknown:
            raise ValueError(f"labeller inputs {unknown}: the workflow makes {', '.join(ARTIFACTS)}")


@owned(
    """
    input_size: {$ref: "#/definitions/size", default: [448, 896]}
    threshold: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.4}
    coverage: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.95}
    max_masks: {type: integer, minimum: 1, default: 32}
    ema: {type: number, minimum: 0, exclusiveMaximum: 1, default: 0.98}
    epochs: {type: integer, minimum: 1, default: 10}
    batch_images: {type: integer, minimum: 1, default: 8}
    fit_splits: {type: array, items: {type: string}, minItems: 1, default: [train]}
    seed: {type: integer, minimum: 0, default: 0}
    """
)
class PrimapsConfig:
    """PriMaPs label-free semantic pseudo-labels (labelgen: primaps): config ``primaps``; ids are
    clusters, scored after Hungarian matching."""

    input_size: tuple[int, int]
    threshold: float  # a mask keeps patches at >= threshold x the maximum similarity to the direction
    coverage: float  # stop once this fraction of the patches is in a mask
    max_masks: int
    ema: float  # prototype decay per batch of the EM
    epochs: int  # passes of the EM over the fitting images
    batch_images: int
    fit_splits: tuple[str, ...]
    seed: int


LABELLERS: Registry[LabellerKind] = Registry("labeller", choices="labelgen", group="spino.labellers", settings="{name}")
LABELLERS.register("spino", LabellerKind(implementation="spino.labelgen.pseudolabel:LabelGenerator", inputs=("heads",)))
LABELLERS.register(
    "primaps",
    LabellerKind(
        implementation="spino.labelgen.primaps:PrimapsLabeller",
        settings=PrimapsConfig,
        inputs=("primaps",),
        label_free=True,
    ),
)


def open_labeller(kind: str, inputs: Mapping[str, Path], settings: dict, device: str) -> Labeller:
    """The labeller ``kind`` from its input files and config ``pseudo_labels``."""
    return LABELLERS.get(kind).load().open(inputs, settings, device)
