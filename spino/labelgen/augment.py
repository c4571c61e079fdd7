"""Training augmentation of the heads: random resized crop with the image's aspect ratio, flip, jitter."""

from __future__ import annotations

import math

import numpy as np
import torch

from spino.transforms import color_jitter, image_tensor


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
    crop = image[y0 : y0 + h, x0 : x0 + w]
    lab = label[y0 : y0 + h, x0 : x0 + w]
    if rng.random() < 0.5:
        crop, lab = crop[:, ::-1], lab[:, ::-1]
    img = image_tensor(crop, size)
    return color_jitter(img, rng, jitter), np.ascontiguousarray(lab)
