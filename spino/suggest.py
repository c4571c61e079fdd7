"""Which k images to annotate: the ones that cover the dataset best in frozen-backbone feature space.

Every image is described by its backbone features mean-pooled over the image and L2-normalised
(the descriptor PASTEL uses to find similar images). ``kmeans`` clusters the descriptors into k
groups (k-means++ seeding, then Lloyd iterations) and suggests the image nearest each centre: k
typical images of k different kinds of scene. ``kcenter`` picks greedily the image farthest from
those already picked: every image lies close to a suggested one, outliers included. Both are
deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from spino.data.io import atomic_path, read_image
from spino.errors import InputError
from spino.features import read_features

METHODS = ("kmeans", "kcenter")


def kcenter(features: np.ndarray, k: int, seed: int) -> list[int]:
    """Greedy k-center: a seeded first image, then each time the image farthest from all chosen."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(features)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < k:
        far = int(distance.argmax())
        chosen.append(far)
        distance = np.minimum(distance, np.linalg.norm(features - features[far], axis=1))
    return chosen


def kmeans(features: np.ndarray, k: int, seed: int, iterations: int = 50) -> list[int]:
    """k-means (k-means++ seeding, Lloyd iterations), then per centre the nearest image not yet chosen."""
    rng = np.random.default_rng(seed)
    centres = [features[rng.integers(len(features))]]
    for _ in range(1, k):
        d2 = np.min([((features - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(
            features[rng.choice(len(features), p=d2 / d2.sum())]
            if d2.sum() > 0
            else features[rng.integers(len(features))]
        )
    centres = np.stack(centres)
    for _ in range(iterations):
        assign = ((features[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        updated = np.stack([features[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)])
        if np.allclose(updated, centres):
            break
        centres = updated
    chosen: list[int] = []
    for centre in centres:
        order = ((features - centre) ** 2).sum(1).argsort(kind="stable")
        chosen.append(int(next(i for i in order if i not in chosen)))
    return chosen


def suggest(features: np.ndarray, k: int, method: str, seed: int) -> list[int]:
    """Indices of the k images to annotate, in the order they were chosen."""
    if method not in METHODS:
        raise InputError(f"unknown suggestion method {method!r}; expected one of {', '.join(METHODS)}")
    if not 0 < k <= len(features):
        raise InputError(f"cannot suggest {k} of {len(features)} images")
    return (kmeans if method == "kmeans" else kcenter)(features, k, seed)


def coverage(features: np.ndarray, chosen: list[int]) -> float:
    """Mean distance of every image to its nearest chosen image (lower: better covered)."""
    distance = np.linalg.norm(features[:, None] - features[chosen][None], axis=-1)
    return float(distance.min(1).mean())


def random_coverage(features: np.ndarray, k: int, seed: int, draws: int = 20) -> float:
    """The coverage of k images drawn at random, averaged over ``draws`` draws: what suggesting beats."""
    rng = np.random.default_rng(seed)
    return float(np.mean([coverage(features, list(rng.choice(len(features), k, replace=False))) for _ in range(draws)]))


def write_annotation(path: str | Path, split: str, image_ids: list[str], note: str) -> None:
    """The config section a run takes: ``annotation: {split, ids}``."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(
            f"# {note}\n" + yaml.safe_dump({"annotation": {"split": split, "ids": image_ids}}, sort_keys=False)
        )


def plot_suggestion(features: np.ndarray, chosen: list[int], image_paths: list[str], out: str | Path) -> None:
    """The suggested images, and every image in a 2-D projection (first two principal components)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centred = features - features.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ axes[:2].T
    nearest = np.linalg.norm(features[:, None] - features[chosen][None], axis=-1).argmin(1)
    columns = min(5, len(chosen))
    rows = -(-len(chosen) // columns)
    fig = plt.figure(figsize=(3.2 * columns, 2.0 * rows + 4.5))
    grid = fig.add_gridspec(rows + 2, columns)
    ax = fig.add_subplot(grid[:2, :])
    ax.scatter(xy[:, 0], xy[:, 1], c=nearest, cmap="tab20", s=12, alpha=0.7)
    ax.scatter(xy[chosen, 0], xy[chosen, 1], c=range(len(chosen)), cmap="tab20", s=140, marker="*", edgecolors="k")
    for rank, i in enumerate(chosen):
        ax.annotate(str(rank + 1), xy[i], textcoords="offset points", xytext=(5, 5))
    ax.set_title(f"{len(features)} images (colour: nearest suggested image, star), first two principal components")
    for rank, i in enumerate(chosen):
        thumb = fig.add_subplot(grid[2 + rank // columns, rank % columns])
        thumb.imshow(read_image(image_paths[i])[::4, ::4])
        thumb.set_title(f"{rank + 1}: {Path(image_paths[i]).name[:28]}", fontsize=7)
        thumb.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


@dataclass(frozen=True)
class Suggestion:
    """The images suggested for annotation among a split's (the pool), and how well they cover it."""

    pool_ids: list[str]
    candidates: np.ndarray  # the pool's descriptors
    chosen: list[int]  # indices into the pool
    note: str

    @property
    def chosen_ids(self) -> list[str]:
        return [self.pool_ids[i] for i in self.chosen]


def suggest_annotation(features_path: str | Path, split: str, k: int, method: str, seed: int) -> Suggestion:
    """The k images of ``split`` to annotate, from the descriptors of ``spino features``, with a note
    comparing their coverage to that of random choices."""
    ids, splits, features = read_features(features_path)
    pool = [i for i, s in enumerate(splits) if s == split]
    if not pool:
        raise InputError(f"{features_path}: no images of split {split!r} (splits: {sorted(set(splits))})")
    candidates = features[pool]
    chosen = suggest(candidates, k, method, seed)
    note = (
        f"spino suggest --method {method} --k {k} --seed {seed}: mean feature distance of the "
        f"{len(pool)} {split} images to the nearest suggested one {coverage(candidates, chosen):.4f} "
        f"(random choices: {random_coverage(candidates, k, seed):.4f})"
    )
    return Suggestion([ids[i] for i in pool], candidates, chosen, note)
