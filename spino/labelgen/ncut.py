"""Normalized-cut instance splitting, the alternative fusion PASTEL describes (``fusion: ncut``).

Connected components of interior pixels (``fusion: cca``) merge two instances wherever their
predicted boundary has a gap, and split one wherever a stray boundary crosses it. Here a thing blob's
interior pixels instead become nodes of a graph whose edges link pixels up to ``radius`` apart with
the "intervening contour" affinity exp(-max boundary probability on the line between them / sigma):
a gap in a boundary still leaves most lines across it blocked. The blob is cut in two by the sign
structure of the second eigenvector of the normalised Laplacian (scipy's sparse eigensolver; the
threshold along it with the lowest normalised cut), and each half again, while the cut's cost stays
under ``max_cost``. Large blobs are coarsened to at most ``max_nodes`` cells (boundaries max-pooled,
so thin ones survive). The parts then go through the same minimum size and nearest-part fill as cca.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from spino.config import owned

if TYPE_CHECKING:  # imported where used: the workflow imports this module (through the fusions) at every call
    from scipy import sparse


@owned(
    """
    max_cost: {type: number, exclusiveMinimum: 0, default: 0.01}
    radius: {type: integer, minimum: 1, maximum: 8, default: 3}
    sigma: {type: number, exclusiveMinimum: 0, default: 0.1}
    max_nodes: {type: integer, minimum: 16, default: 1500}
    """
)
class NcutConfig:
    """The normalised cuts' settings: config ``pseudo_labels.ncut`` (the fusion ``ncut`` owns them)."""

    max_cost: float  # split while the best normalised cut costs less than this
    radius: int  # cells linked to the cells within this distance
    sigma: float  # affinity exp(-max boundary probability along the line / sigma)
    max_nodes: int  # a blob's interior is coarsened to at most this many cells


def ncut_parts(blob: np.ndarray, boundary: np.ndarray, seeds: np.ndarray, cfg: NcutConfig) -> np.ndarray:
    """Parts (1..n, 0 elsewhere) of a blob's ``seeds`` by recursive normalised cuts.

    ``blob``, ``boundary`` (probability, 0..1) and ``seeds`` (interior pixels) cover the blob's box.
    """
    factor = max(1, int(np.ceil(np.sqrt(seeds.sum() / cfg.max_nodes))))
    cells_boundary = _pool(np.where(blob, boundary, 1.0), factor, np.max)
    cells_seed = _pool(seeds.astype(np.float32), factor, np.mean) >= 0.5
    nodes = np.flatnonzero(cells_seed)
    labels = np.zeros(cells_seed.size, np.int32)
    if len(nodes) >= 2:
        graph = _affinities(cells_boundary, cells_seed, cfg)
        for k, members in enumerate(_bipartitions(graph, np.arange(len(nodes)), cfg), start=1):
            labels[nodes[members]] = k
    elif len(nodes) == 1:
        labels[nodes] = 1
    cells = labels.reshape(cells_seed.shape)
    parts = np.repeat(np.repeat(cells, factor, 0), factor, 1)[: blob.shape[0], : blob.shape[1]]
    return np.where(seeds, parts, 0)


def _pool(values: np.ndarray, factor: int, reduce) -> np.ndarray:
    """``reduce`` over factor x factor cells (the edges padded with the edge values)."""
    if factor == 1:
        return values
    h, w = values.shape
    padded = np.pad(values, ((0, -h % factor), (0, -w % factor)), mode="edge")
    return reduce(padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor), axis=(1, 3))


def _affinities(boundary: np.ndarray, node: np.ndarray, cfg: NcutConfig) -> sparse.csr_matrix:
    """Symmetric (N, N) affinities between the node cells, N = node.sum(), in raster order."""
    from scipy import sparse

    h, w = node.shape
    index = np.full(node.shape, -1, np.int64)
    index[node] = np.arange(int(node.sum()))
    rows, cols, values = [], [], []
    r = cfg.radius
    for dy in range(0, r + 1):
        for dx in range(-r, r + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > r * r:
                continue  # each pair once, within the radius
            ys, xs = np.nonzero(node[: h - dy, max(0, -dx) : w - max(0, dx)])
            xs = xs + max(0, -dx)
            ends = node[ys + dy, xs + dx]
            ys, xs = ys[ends], xs[ends]
            steps = max(abs(dy), abs(dx))
            worst = np.zeros(len(ys))
            for t in np.linspace(0.0, 1.0, steps + 1):  # the cells on the line, both ends included
                worst = np.maximum(worst, boundary[np.rint(ys + t * dy).astype(int), np.rint(xs + t * dx).astype(int)])
            rows.append(index[ys, xs])
            cols.append(index[ys + dy, xs + dx])
            values.append(np.exp(-worst / cfg.sigma))
    n = int(node.sum())
    rows, cols, values = (np.concatenate(a) if a else np.zeros(0) for a in (rows, cols, values))
    upper = sparse.coo_matrix((values, (rows, cols)), shape=(n, n))
    return (upper + upper.T).tocsr()


def _bipartitions(graph: sparse.csr_matrix, members: np.ndarray, cfg: NcutConfig) -> list[np.ndarray]:
    """``members`` split recursively in two while the best normalised cut costs under ``max_cost``."""
    split = _best_cut(graph[members][:, members]) if len(members) >= 4 else None
    if split is None or split[0] >= cfg.max_cost:
        return [members]
    _, side = split
    return _bipartitions(graph, members[side], cfg) + _bipartitions(graph, members[~side], cfg)


def _best_cut(w: sparse.csr_matrix) -> tuple[float, np.ndarray] | None:
    """(cost, side) of the lowest normalised cut among thresholds of the second eigenvector."""
    from scipy import sparse
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    degree = np.asarray(w.sum(axis=1)).ravel()
    if (degree <= 0).any():  # a node without neighbours: cut it off at no cost
        side = degree <= 0
        return (0.0, side) if not side.all() else None
    scale = sparse.diags(1.0 / np.sqrt(degree))
    normalised = scale @ w @ scale
    try:
        if w.shape[0] <= 200:
            _, vectors = np.linalg.eigh(normalised.toarray())
            second = vectors[:, -2]
        else:
            _, vectors = eigsh(normalised, k=2, which="LA", tol=1e-6, v0=np.sqrt(degree))
            second = vectors[:, 0]
    except ArpackNoConvergence:
        return None
    y = second / np.sqrt(degree)
    total = degree.sum()
    best = None
    for threshold in np.quantile(y, np.linspace(0.05, 0.95, 19)):
        side = y > threshold
        if side.all() or not side.any():
            continue
        cut = w[side][:, ~side].sum()
        cost = cut / degree[side].sum() + cut / (total - degree[side].sum())
        if best is None or cost < best[0]:
            best = (float(cost), side)
    return best
