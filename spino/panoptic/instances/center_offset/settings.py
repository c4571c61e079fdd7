"""Centre/offset's settings: config ``panoptic.model.center_offset``."""

from __future__ import annotations

from spino.config import owned


@owned(
    """
    sigma: {type: number, exclusiveMinimum: 0, default: 8.0, description: "the centre heatmap's Gaussian, pixels at input_size"}
    center_weight: {type: number, minimum: 0, default: 20.0}
    offset_weight: {type: number, minimum: 0, default: 0.1}
    center_threshold: {type: number, minimum: 0, maximum: 1, default: 0.1}
    nms_kernel: {type: integer, minimum: 1, default: 7}
    top_k: {type: integer, minimum: 1, default: 200, description: "centres kept per image, strongest first"}
    chunk_pixels: {type: integer, minimum: 1024, default: 1048576, description: "pixels grouped at a time (bounds the pixel x centre distance matrix)"}
    """
)
class CenterOffsetConfig:
    sigma: float  # the Gaussian centre heatmap's sigma, pixels at the input size
    center_weight: float  # the loss weights of the centre heatmap (MSE) and the offsets (L1)
    offset_weight: float
    center_threshold: float  # inference: centres are heatmap maxima above this
    nms_kernel: int  # ... within this window
    top_k: int  # ... at most this many, strongest first
    chunk_pixels: int  # pixels grouped at a time (bounds the pixel x centre distance matrix)
