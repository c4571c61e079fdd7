"""Scores: panoptic quality and mIoU of images (``panoptic``), STQ and VPQ of videos (``video``)."""

from spino.metrics.panoptic import PanopticStats, format_summary, write_not_scored, write_scores
from spino.metrics.video import STQ, VPQ, IdSwitches, VideoScores, format_video_summary, write_video_scores

__all__ = [
    "STQ",
    "VPQ",
    "IdSwitches",
    "PanopticStats",
    "VideoScores",
    "format_summary",
    "format_video_summary",
    "write_not_scored",
    "write_scores",
    "write_video_scores",
]
