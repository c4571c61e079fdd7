"""Image and label transforms shared by both halves of the method."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def color_jitter(image: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s], in random order."""
    if strength <= 0:
        return image
    x = image / 255.0
    for op in rng.permutation(3):
        f = float(rng.uniform(1 - strength, 1 + strength))
        if op == 0:
            x = x * f
        elif op == 1:
            mean = _gray(x).mean()
            x = (x - mean) * f + mean
        else:
            gray = _gray(x)
            x = (x - gray) * f + gray
        x = x.clamp(0, 1)
    return x * 255.0


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


def image_tensor(
    image: np.ndarray, size: tuple[int, int] | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """An RGB uint8 array as a (3, H, W) float tensor in 0..255, bilinearly resized to ``size`` if given."""
    img = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
    return img
