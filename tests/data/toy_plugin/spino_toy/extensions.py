"""The registry entries the entry points name, with their settings (torch-free: spino plans with them)."""

from __future__ import annotations

from spino.config import owned
from spino.labelgen.head_kinds import UPSAMPLE, HeadKind, HeadSettings, head_properties
from spino.registry import Extension


@owned(
    {
        **head_properties(hidden=[16], input_size=[64, 128], epochs=10, crop_scale=[0.5, 1.0]),
        "upsample": UPSAMPLE,
        "pos_weight": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1.0,
            "description": "BCE weight of thing pixels",
        },
    }
)
class ThingHeadSettings(HeadSettings):
    """Config ``thing_head``."""

    upsample: int
    pos_weight: float


# trained in every run whose fusion is stripes, which reads it
THING_HEAD = HeadKind(
    implementation="spino_toy.thing_head:ThingHead",
    settings=ThingHeadSettings,
    description="a thing head",
    fusions=("stripes",),
)


@owned(
    """
    threshold: {type: number, default: 0.0, description: "objectness logit above which a thing pixel is in an instance"}
    weight: {type: number, minimum: 0, default: 1.0, description: "the objectness loss's weight"}
    """
)
class BlobsSettings:
    """Config ``panoptic.model.blobs``."""

    threshold: float
    weight: float


BLOBS = Extension("spino_toy.blobs:Blobs", BlobsSettings)
