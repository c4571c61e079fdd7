"""A toy spino plugin: the head kind ``thing``, the fusion ``stripes`` and the instance method ``blobs``.

``extensions.py`` and ``fusion.py`` are torch-free (spino's workflow plans with them); the classes
that need torch (``thing_head.py``, ``blobs.py``) are named there and imported when they run.
"""
