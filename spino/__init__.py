"""spino: few-shot panoptic segmentation with foundation models (SPINO), as staged artifacts."""

__version__ = "0.1.0"
