"""The fusion ``stripes``: every thing blob cut into vertical stripes ``stripe`` pixels wide (config
``pseudo_labels.stripes.stripe``). Useless for segmentation; it shows what a fusion plugin is: a
``Splitter`` with its inputs and its own settings, declared under the entry point ``spino.fusions``."""

from __future__ import annotations

import numpy as np

from spino.labelgen.fusion import Splitter


class Stripes(Splitter):
    inputs = ("settings",)
    settings_schema = {
        "stripe": {"type": "integer", "minimum": 1, "default": 8, "description": "stripe width in pixels"}
    }

    def __init__(self, settings: dict):
        self.stripe = settings["stripe"]

    def parts(self, blob: np.ndarray, seeds: np.ndarray, box: tuple[slice, slice], minimum: int) -> np.ndarray:
        """Stripes of the image's columns (x // stripe) within the blob; those under ``minimum`` pixels
        dropped (spino gives their pixels to the nearest stripe kept), the rest numbered 1..n."""
        columns = np.arange(box[1].start, box[1].stop) // self.stripe
        stripes = np.where(blob, np.broadcast_to(columns - columns.min() + 1, blob.shape), 0)
        ids, sizes = np.unique(stripes[blob], return_counts=True)
        kept = ids[sizes >= minimum]
        numbered = np.zeros(int(stripes.max()) + 1, np.int32)
        numbered[kept] = np.arange(1, len(kept) + 1)
        return numbered[stripes]
