"""The panoptic model (SPINO's second half): trained on pseudo-labels, runs online on new images."""
