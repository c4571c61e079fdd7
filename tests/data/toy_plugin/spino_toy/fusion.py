"""The fusion ``stripes``: every thing blob cut into vertical stripes ``stripe`` pixels wide (config
``pseudo_labels.stripes.stripe``), seeded where the ``thing`` head is sure. Useless for segmentation;
it shows what a fusion plugin is: a ``Splitter`` with its inputs (a head's output among them) and its
own settings, declared under the entry point ``spino.fusions``."""

from __future__ import annotations

import numpy as np

from spino.config import owned
from spino.labelgen.fusion import Splitter


@owned(
    """
    stripe: {type: integer, minimum: 1, default: 8, description: "stripe width in pixels"}
    sure: {type: number, minimum: 0, maximum: 1, default: 0.5, description: "seeds: pixels whose thing probability is at least this"}
    """
)
class StripesSettings:
    stripe: int
    sure: float


class Stripes(Splitter):
    inputs = ("settings", "thing")
    settings = StripesSettings

    def __init__(self, settings: StripesSettings, thing: np.ndarray):
        self.cfg, self.thing = settings, thing[0]  # the thing head's probability, at the image's size

    def parts(self, blob: np.ndarray, seeds: np.ndarray, box: tuple[slice, slice], minimum: int) -> np.ndarray:
        """Stripes of the image's columns (x // stripe) over the blob's sure pixels; those under
        ``minimum`` pixels dropped (spino gives the blob's other pixels to the nearest stripe kept)."""
        sure = blob & (self.thing[box] >= self.cfg.sure)
        columns = np.arange(box[1].start, box[1].stop) // self.cfg.stripe
        stripes = np.where(sure, np.broadcast_to(columns - columns.min() + 1, blob.shape), 0)
        ids, sizes = np.unique(stripes[sure], return_counts=True)
        kept = ids[sizes >= minimum]
        numbered = np.zeros(int(stripes.max()) + 1, np.int32)
        numbered[kept] = np.arange(1, len(kept) + 1)
        return numbered[stripes]
