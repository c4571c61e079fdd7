"""SOLOv2's settings: config ``panoptic.model.solov2``."""

from __future__ import annotations

from spino.config import section


@section("panoptic.model.solov2")
class Solov2Config:
    grids: tuple[int, ...]  # S of each level (official: 40, 36, 24, 16, 12)
    strides: tuple[int, ...]  # the adapter stride each level's grid is resized from (official: 8, 8, 16, 32, 32)
    scale_ranges: tuple[tuple[float, float], ...]  # sqrt(instance area) / the input's shorter side, per level
    sigma: float  # an instance's centre region: this share of its box around the centre of mass (at most 3x3 cells)
    tower_convs: int  # conv layers of the category and kernel towers
    tower_channels: int
    mask_channels: int  # E: mask-feature channels, so the kernels' length
    max_instances: int  # instances per training image kept for the targets (the largest first)
    min_instance_area: int  # instances smaller than this (pixels at the input size) carry no loss
    focal_alpha: float
    focal_gamma: float
    mask_weight: float  # the Dice loss's weight in the total (official: 3)
    score_threshold: float  # inference: category scores kept after point NMS
    mask_threshold: float  # a mask pixel is in the instance above this probability
    pre_nms: int  # candidates into Matrix NMS
    nms_sigma: float  # Matrix NMS, Gaussian: decay exp(-sigma * iou^2)
    update_threshold: float  # scores after the decay kept above this
    max_detections: int  # instances per image after Matrix NMS
    fusion: str  # paste | efficientps: how instances and the semantic head make the panoptic map
    overlap_threshold: float  # paste: an instance mostly under higher-scored ones is dropped
