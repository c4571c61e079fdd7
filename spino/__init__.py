"""spino: few-shot panoptic segmentation with foundation models (SPINO), as staged artifacts."""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    """``spino.Segmenter``, imported when first asked for: a ``spino`` command does not load torch
    for it, and the code digests of the workflow's commands (spino.provenance follows import
    statements) do not count the deploy modules, which no stage runs."""
    if name == "Segmenter":
        return importlib.import_module("spino.deploy.segmenter").Segmenter
    raise AttributeError(f"module 'spino' has no attribute {name!r}")
