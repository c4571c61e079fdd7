"""SOLOv2's settings: config ``panoptic.model.solov2``."""

from __future__ import annotations

from spino.config import owned


@owned(
    """
    grids: {type: array, items: {type: integer, minimum: 2}, minItems: 1, default: [40, 36, 24, 16, 12]}
    strides: {type: array, items: {enum: [4, 8, 16, 32]}, minItems: 1, default: [8, 8, 16, 32, 32], description: "the adapter stride each grid is resized from"}
    scale_ranges:
      type: array
      items: {type: array, items: {type: number, minimum: 0}, minItems: 2, maxItems: 2}
      minItems: 1
      default: [[0.0, 0.12], [0.06, 0.24], [0.12, 0.48], [0.24, 0.96], [0.48, 10.0]]
      description: "per level, sqrt(instance area) / the input's shorter side (official: 1-96, 48-192, 96-384, 192-768, 384-2048 px at 800)"
    sigma: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.2}
    tower_convs: {type: integer, minimum: 0, default: 2}
    tower_channels: {type: integer, minimum: 4, default: 128}
    mask_channels: {type: integer, minimum: 2, default: 64}
    max_instances: {type: integer, minimum: 1, default: 128, description: "instances per training image with targets, the largest first"}
    min_instance_area: {type: integer, minimum: 0, default: 16, description: "smaller instances (pixels at the input size) carry no loss"}
    focal_alpha: {type: number, minimum: 0, maximum: 1, default: 0.25}
    focal_gamma: {type: number, minimum: 0, default: 2.0}
    mask_weight: {type: number, minimum: 0, default: 3.0}
    score_threshold: {type: number, minimum: 0, maximum: 1, default: 0.1}
    mask_threshold: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.5}
    pre_nms: {type: integer, minimum: 1, default: 500}
    nms_sigma: {type: number, exclusiveMinimum: 0, default: 2.0}
    update_threshold: {type: number, minimum: 0, maximum: 1, default: 0.05}
    max_detections: {type: integer, minimum: 1, default: 100}
    fusion: {enum: [paste, efficientps], default: paste, description: "paste: instances by descending score over the semantic head's stuff; efficientps: (sigmoid(m) + sigmoid(s)) * (m + s) against the stuff logits"}
    overlap_threshold: {type: number, minimum: 0, maximum: 1, default: 0.5, description: "paste: an instance with more of its mask under higher-scored ones is dropped"}
    """
)
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
