"""Panoptic-DeepLab's instances: a centre heatmap and offsets from each thing pixel to its centre.

Settings: ``settings.py`` (config ``panoptic.model.center_offset``); targets: ``targets.py``;
grouping: ``grouping.py`` (all unchanged since the method moved behind the interface: a test keeps
the tiny run's weights and losses bit-identical).
"""
