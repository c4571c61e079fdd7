"""Every registry that fills the config schema's choices (dataset kinds, fusions, segment formats),
loaded: import this before checking a whole config (the workflow and ``spino init`` do). Kept apart
so that a command checking one section imports only what that section needs. The instance methods
(``panoptic.model.instance``) are the exception: their registry loads torch, which planning must
not, so the schema file states their names and a test keeps the file and the registry equal."""

from __future__ import annotations

import spino.data  # noqa: F401  (registers the dataset kinds)
import spino.export  # noqa: F401  (registers the label formats of spino segment and spino export)
import spino.labelgen.fusion  # noqa: F401  (registers the fusion methods)
from spino.config import check_config

__all__ = ["check_config"]
