"""Fusion of a semantic map and what splits its thing blobs into a panoptic map.

For every thing class: its 4-connected blobs; blobs under ``min_pixels`` become ignore; a splitter
cuts each blob into parts (``FUSIONS``, one class each: ``cca``, SPINO's 4-connected parts of the
interior (not-boundary) pixels; ``ncut``, PASTEL's normalised cuts of the boundary head's
affinities; ``embedding``, SPOCO's mean-shift clusters of pixel embeddings); parts under
``min_pixels`` are dropped; no surviving part means the blob is one instance; otherwise every other
pixel of the blob joins the nearest surviving part (Euclidean, in pixel coordinates). Every thing
pixel ends with an instance, no stuff pixel has one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.config import owned
from spino.encoding import LABEL_DIVISOR, encode
from spino.errors import InputError
from spino.labelgen.ncut import NcutConfig, ncut_parts
from spino.registry import Registry

# scipy is imported where it is used: every `snakemake` call imports this module for its registry
# (spino.choices), and scipy.ndimage alone would add 0.2 s to each.
FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)  # ndimage.generate_binary_structure(2, 1)


def min_pixels_per_class(
    min_pixels: int | Mapping[str, int], class_set: ClassSet, scale: float = 1.0
) -> dict[int, int]:
    """Per thing-class minimum sizes from one int or a {class name: int} mapping (others: 0)."""
    if isinstance(min_pixels, Mapping):
        unknown = sorted(set(min_pixels) - {class_set.names[i] for i in class_set.thing_ids})
        if unknown:
            raise InputError(f"min_pixels names {unknown}, which are not thing classes of {class_set.name!r}")
        values = {i: min_pixels.get(class_set.names[i], 0) for i in class_set.thing_ids}
    else:
        values = {i: int(min_pixels) for i in class_set.thing_ids}
    return {i: int(round(v * scale)) for i, v in values.items()}


class Splitter(ABC):
    """How a fusion cuts one blob of a thing class into instance parts, from the inputs it declares
    (``__init__``'s keywords): ``boundary`` (the boundary head's probability map), ``settings`` (its
    own settings, an instance of its ``settings`` class: config ``pseudo_labels.<its name>``) or the
    name of a head kind whose output it reads (the kind's ``fusions`` name this fusion, so the
    workflow trains it: a float32 (C, H, W) array at the image's size)."""

    inputs: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[type | None] = None  # an @owned class, or None: no settings

    @abstractmethod
    def parts(self, blob: np.ndarray, seeds: np.ndarray, box: tuple[slice, slice], minimum: int) -> np.ndarray:
        """The blob's parts with at least ``minimum`` pixels, numbered 1..n (0 elsewhere), in its box."""


class ConnectedInterior(Splitter):
    """SPINO: the 4-connected components of the blob's interior pixels."""

    def parts(self, blob, seeds, box, minimum):
        from scipy import ndimage

        return _surviving_parts(*ndimage.label(seeds, structure=FOUR_CONNECTED), minimum)


class NormalisedCuts(Splitter):
    """PASTEL: recursive normalised cuts of the interior over the boundary probabilities (spino.labelgen.ncut)."""

    inputs = ("boundary", "settings")
    settings = NcutConfig

    def __init__(self, boundary: np.ndarray, settings: NcutConfig):
        self.boundary, self.cfg = boundary, settings

    def parts(self, blob, seeds, box, minimum):
        parts = ncut_parts(blob, self.boundary[box], seeds, self.cfg)
        return _surviving_parts(parts, int(parts.max()), minimum)


@owned(
    """
    bandwidth: {type: number, exclusiveMinimum: 0, default: 1.5}
    max_points: {type: integer, minimum: 16, default: 4000}
    """
)
class EmbeddingClusterConfig:
    """The embedding fusion's settings: config ``pseudo_labels.embedding``."""

    bandwidth: float  # mean-shift radius in embedding space (the loss pulls to 0.5, pushes to 4.0)
    max_points: int  # a blob's pixels subsampled to this many to find the modes


class EmbeddingClusters(Splitter):
    """SPOCO: mean shift of the whole blob's pixel embeddings (the embedding head's output,
    spino.labelgen.embedding); the interior unused."""

    inputs = ("embedding", "settings")
    settings = EmbeddingClusterConfig

    def __init__(self, embedding: np.ndarray, settings: EmbeddingClusterConfig):
        self.embeddings, self.cfg = embedding, settings
        self.rng = np.random.default_rng(0)  # subsampling of large blobs' pixels for the clustering

    def parts(self, blob, seeds, box, minimum):
        from spino.labelgen.embedding import embedding_parts

        parts = embedding_parts(
            blob, self.embeddings[(slice(None), *box)], self.cfg.bandwidth, self.cfg.max_points, self.rng
        )
        return _surviving_parts(parts, int(parts.max()), minimum)


# config `pseudo_labels.fusion`: the splitter of each fusion method.
FUSIONS: Registry[type[Splitter]] = Registry(
    "fusion", choices="pseudo_labels.fusion", group="spino.fusions", settings="pseudo_labels.{name}"
)
FUSIONS.register("cca", ConnectedInterior)
FUSIONS.register("ncut", NormalisedCuts)
FUSIONS.register("embedding", EmbeddingClusters)


def fuse(
    semantic: np.ndarray,
    interior: np.ndarray,
    class_set: ClassSet,
    min_pixels: Mapping[int, int],
    fusion: str,
    **inputs,
) -> np.ndarray:
    """Panoptic map (spino encoding) from train ids (255 ignore) and a boolean interior map.

    ``fusion`` names the splitter (FUSIONS) and ``inputs`` are the ones it declares, e.g.
    ``boundary=`` and ``settings=`` for normalised cuts (None counts as not given; others are ignored).
    """
    given = {name: value for name, value in inputs.items() if value is not None}
    kind = FUSIONS.get(fusion)
    missing = [name for name in kind.inputs if name not in given]
    if missing:
        raise InputError(f"fusion {fusion!r} needs {', '.join(missing)}")
    from scipy import ndimage

    splitter = kind(**{name: given[name] for name in kind.inputs})
    semantic = semantic.copy()
    instance = np.zeros(semantic.shape, dtype=np.int64)
    for cls in class_set.thing_ids:
        mask = semantic == cls
        if not mask.any():
            continue
        minimum = min_pixels.get(cls, 0)
        blobs, _ = ndimage.label(mask, structure=FOUR_CONNECTED)
        next_id = 1
        for b, box in enumerate(ndimage.find_objects(blobs), start=1):
            blob = blobs[box] == b
            if blob.sum() < minimum:
                semantic[box][blob] = IGNORE
                continue
            parts = splitter.parts(blob, blob & interior[box], box, minimum)
            n_parts = int(parts.max())
            if n_parts == 0:
                instance[box][blob] = next_id
                next_id += 1
                continue
            # nearest surviving part for every blob pixel (parts themselves map to themselves)
            idx = ndimage.distance_transform_edt(parts == 0, return_distances=False, return_indices=True)
            nearest = parts[idx[0], idx[1]]
            instance[box][blob] = nearest[blob] + next_id - 1
            next_id += n_parts
        if next_id > LABEL_DIVISOR:
            raise InputError(f"more than {LABEL_DIVISOR - 1} instances of class {class_set.names[cls]!r} in one image")
    return encode(semantic, instance)


def _surviving_parts(parts: np.ndarray, n: int, minimum: int) -> np.ndarray:
    """The parts (numbered 1..n) with at least ``minimum`` pixels, numbered 1..m (0 elsewhere)."""
    if n == 0:
        return parts
    sizes = np.bincount(parts.ravel(), minlength=n + 1)
    keep = sizes >= minimum
    keep[0] = False
    renumber = np.zeros(n + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumber[parts]
