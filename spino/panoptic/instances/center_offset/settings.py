"""Centre/offset's settings: config ``panoptic.model.center_offset``."""

from __future__ import annotations

from spino.config import section


@section("panoptic.model.center_offset")
class CenterOffsetConfig:
    sigma: float  # the Gaussian centre heatmap's sigma, pixels at the input size
    center_weight: float  # the loss weights of the centre heatmap (MSE) and the offsets (L1)
    offset_weight: float
    center_threshold: float  # inference: centres are heatmap maxima above this
    nms_kernel: int  # ... within this window
    top_k: int  # ... at most this many, strongest first
    chunk_pixels: int  # pixels grouped at a time (bounds the pixel x centre distance matrix)
