"""Training augmentation of the heads: random resized crop with the image's aspect ratio, flip, jitter."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from spino.transforms import color_jitter


def random_resized_crop_box(
    rng: np.random.Generator, height: int, width: int, scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) covering a random fraction in ``scale`` of the area, with the image's aspect ratio."""
    area = rng.uniform(*scale)
    h = max(1, min(height, int(round(height * math.sqrt(area)))))
    w = max(1, min(width, int(round(width * math.sqrt(area)))))
    y0 = int(rng.integers(0, height - h + 1))
    x0 = int(rng.integers(0, width - w + 1))
    return y0, x0, h, w


def augment(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    crop_scale: tuple[float, float],
    jitter: float,
) -> tuple[torch.Tensor, np.ndarray]:
    """Image (3, H, W) float in 0..255 at ``size`` and the label crop (nearest), both flipped together.

    The label keeps its crop resolution; callers resize it to their head's output size.
    """
    y0, x0, h, w = random_resized_crop_box(rng, *image.shape[:2], crop_scale)
    img = torch.from_numpy(np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])).permute(2, 0, 1).float()
    lab = label[y0 : y0 + h, x0 : x0 + w]
    if rng.random() < 0.5:
        img, lab = img.flip(-1), lab[:, ::-1]
    img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
    return color_jitter(img, rng, jitter), np.ascontiguousarray(lab)
