"""Losses shared by the label generator and the panoptic model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spino.classes import IGNORE


def top_k_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, fraction: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the hardest ``fraction`` of the non-ignored pixels ("bootstrapped" CE).

    Optional per-pixel ``weights`` scale each pixel's loss before the hardest are chosen.
    """
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
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
