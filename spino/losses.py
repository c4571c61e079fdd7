"""Losses shared by the label generator and the panoptic model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spino.classes import IGNORE


def top_k_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    fraction: float,
    weights: torch.Tensor | None = None,
    runner_up: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the hardest ``fraction`` of the non-ignored pixels ("bootstrapped" CE).

    Optional per-pixel ``weights`` scale each pixel's loss before the hardest are chosen. Optional
    ``runner_up`` (second class per pixel, 255 none; its share s of the target) makes each pixel's
    target soft: (1 - s) x CE(target) + s x CE(runner-up).
    """
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    if runner_up is not None:
        second, share = runner_up
        second_loss = F.cross_entropy(logits, second, ignore_index=IGNORE, reduction="none")
        loss = loss * (1 - share) + second_loss * share
    if weights is not None:
        loss = loss * weights
    loss = loss.flatten()
    valid = (target != IGNORE).flatten()
    n = int(valid.sum())
    if n == 0:
        return logits.sum() * 0.0
    k = max(1, int(round(fraction * n)))
    return loss[valid].topk(k).values.mean()


def boundary_loss(logits: torch.Tensor, interior: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the interior probability (1 = interior, 0 = boundary)."""
    return F.binary_cross_entropy_with_logits(logits, interior.float())


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum of weighted per-pixel losses over the sum of weights (0 when no pixel counts)."""
    total = weights.sum()
    return (loss * weights).sum() / total if total > 0 else (loss * weights).sum()


def discriminative_loss(
    embeddings: torch.Tensor, instances: torch.Tensor, delta_var: float, delta_dist: float, regularisation: float = 1e-3
) -> torch.Tensor:
    """Push-pull embedding loss (De Brabandere et al. 2017, as SPOCO uses it) of (D, H, W) embeddings
    and an (H, W) instance map (0: no labelled instance): pixels pulled to within ``delta_var`` of
    their instance's mean, means pushed beyond 2 x ``delta_dist`` of each other, means kept small."""
    ids = instances.unique()
    ids = ids[ids > 0]
    if len(ids) == 0:
        return embeddings.sum() * 0.0
    flat = embeddings.flatten(1).T  # (HW, D)
    labels = instances.flatten()
    means = torch.stack([flat[labels == i].mean(0) for i in ids])
    pull = torch.stack(
        [(F.relu((flat[labels == i] - means[n]).norm(dim=1) - delta_var) ** 2).mean() for n, i in enumerate(ids)]
    ).mean()
    push = embeddings.sum() * 0.0
    if len(ids) > 1:
        distance = torch.cdist(means, means)
        off_diagonal = ~torch.eye(len(ids), dtype=torch.bool, device=distance.device)
        push = (F.relu(2 * delta_dist - distance[off_diagonal]) ** 2).mean()
    return pull + push + regularisation * means.norm(dim=1).mean()


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Sigmoid focal loss summed over cells and classes, normalised by the positive cells (+1).
    ``targets`` (N,) hold a class or -1 (background); ``weights`` (N,) are 0 where a cell carries no loss."""
    onehot = torch.zeros_like(logits)
    positive = targets >= 0
    onehot[positive.nonzero()[:, 0], targets[positive]] = 1.0
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    alpha_t = alpha * onehot + (1 - alpha) * (1 - onehot)
    loss = alpha_t * (1 - p_t) ** gamma * ce
    return (loss.sum(1) * weights).sum() / (positive.sum() + 1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over masks of 1 - 2 sum(p t) / (sum(p^2) + sum(t^2)), each sum over the pixels that carry
    loss (``weights``), with SOLO's 0.001 added to both squares."""
    p = logits.sigmoid().flatten(1) * weights.flatten(1)
    t = targets.float().flatten(1) * weights.flatten(1)
    a = (p * t).sum(1)
    b = (p * p).sum(1) + 0.001
    c = (t * t).sum(1) + 0.001
    return (1 - 2 * a / (b + c)).mean()
