"""Instances from sparse object labels by pixel embeddings (SPOCO, Wolny et al., CVPR 2022).

An embedding head (the same 1x1-conv MLP as the other heads, on the frozen backbone) maps every
pixel to a point in a ``dim``-dimensional space, trained on the annotated images with only some of
their instances labelled (``instance_fraction`` of each image's instances, a fixed seeded choice,
as an annotator who labelled only those): the push-pull loss on the labelled instances and a
consistency term elsewhere (the embeddings of a flipped, colour-jittered view, taken without
gradient as a teacher's, must agree). At labelling time each thing blob of the semantic map is cut
into instances by mean-shift clustering of its pixels' embeddings (``fusion: embedding``), then
the same minimum sizes and nearest-part fill as the other fusions apply. Per shard, SPOCO-style
HDF5 files (spino.labelgen.shards) hold ``/raw`` (the image), ``/embeddings`` and ``/segmentation``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spino.classes import ClassSet
from spino.encoding import IGNORE_PANOPTIC, instance_of, semantic_of


def sparse_instances(
    panoptic: np.ndarray, class_set: ClassSet, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """The panoptic map with only ``fraction`` of its thing instances kept (at least one when there is
    any); the pixels of the others become void, i.e. unlabelled."""
    thing = class_set.thing_mask()
    semantic, instance = semantic_of(panoptic), instance_of(panoptic)
    is_instance = (instance > 0) & thing[np.where(semantic == 255, 0, semantic)] & (semantic != 255)
    ids = np.unique(panoptic[is_instance])
    if len(ids) == 0 or fraction >= 1:
        return panoptic
    keep = rng.choice(ids, size=max(1, int(round(fraction * len(ids)))), replace=False)
    dropped = is_instance & ~np.isin(panoptic, keep)
    return np.where(dropped, IGNORE_PANOPTIC, panoptic).astype(panoptic.dtype)


def instance_targets(panoptic: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """(H, W) int64: 1..n for the labelled thing instances, 0 for every other pixel."""
    semantic, instance = semantic_of(panoptic), instance_of(panoptic)
    known = semantic != 255
    labelled = known & class_set.thing_mask()[np.where(known, semantic, 0)] & (instance > 0)
    ids = np.unique(panoptic[labelled])
    return np.where(labelled, np.searchsorted(ids, panoptic) + 1, 0).astype(np.int64)


def mean_shift(points: torch.Tensor, bandwidth: float, iterations: int = 30) -> torch.Tensor:
    """Modes (M, D) of (N, D) points by flat-kernel mean shift from bin seeds, modes within
    ``bandwidth`` of a stronger one merged into it."""
    seeds = torch.unique(torch.round(points / bandwidth), dim=0) * bandwidth
    for _ in range(iterations):
        near = torch.cdist(seeds, points) <= bandwidth
        counts = near.sum(1, keepdim=True)
        moved = torch.where(counts > 0, (near.float() @ points) / counts.clamp(min=1), seeds)
        done = (moved - seeds).norm(dim=1).max() < 1e-3 * bandwidth
        seeds = moved
        if done:
            break
    strength = (torch.cdist(seeds, points) <= bandwidth).sum(1)
    modes: list[torch.Tensor] = []
    for i in strength.argsort(descending=True).tolist():
        if all((seeds[i] - m).norm() > bandwidth for m in modes):
            modes.append(seeds[i])
    return torch.stack(modes)


def embedding_parts(
    blob: np.ndarray, embeddings: np.ndarray, bandwidth: float, max_points: int, rng: np.random.Generator
) -> np.ndarray:
    """Parts (1..n, 0 outside the blob) of a blob by mean shift of its pixels' (D, h, w) embeddings
    (at most ``max_points`` of them, drawn by ``rng``, find the modes)."""
    points = torch.from_numpy(embeddings[:, blob].T.astype(np.float32))
    sample = (
        points
        if len(points) <= max_points
        else points[torch.from_numpy(rng.choice(len(points), max_points, replace=False))]
    )
    modes = mean_shift(sample, bandwidth)
    parts = np.zeros(blob.shape, np.int32)
    parts[blob] = torch.cdist(points, modes).argmin(1).numpy() + 1
    return parts


def with_coordinates(embeddings: torch.Tensor, span: float) -> torch.Tensor:
    """(..., D, h, w) embeddings with the pixel's position added to the first two channels, the image
    ``span`` units wide and high (0: unchanged). Two objects that look alike then still differ where
    they are; the head learns offsets that gather an instance at one point (spatial embeddings)."""
    if span <= 0:
        return embeddings
    h, w = embeddings.shape[-2:]
    ys = (torch.arange(h, device=embeddings.device, dtype=embeddings.dtype) + 0.5) / h * span
    xs = (torch.arange(w, device=embeddings.device, dtype=embeddings.dtype) + 0.5) / w * span
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, h, w): x, y
    return torch.cat([embeddings[..., :2, :, :] + grid, embeddings[..., 2:, :, :]], dim=-3)


def resize_embeddings(embeddings: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(D, h, w) embeddings bilinearly resized to ``size`` as float32 numpy."""
    return F.interpolate(embeddings[None].float(), size=size, mode="bilinear", align_corners=False)[0].cpu().numpy()
