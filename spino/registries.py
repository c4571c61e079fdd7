"""Every registry that fills the config schema's choices (dataset kinds, fusions, segment formats),
loaded: import this before checking a whole config (the workflow and ``spino init`` do). Kept apart
so that a command checking one section imports only what that section needs."""

from __future__ import annotations

import spino.data  # noqa: F401  (registers the dataset kinds)
import spino.deploy.outputs  # noqa: F401  (registers the segment formats)
import spino.labelgen.fusion  # noqa: F401  (registers the fusion methods)
from spino.config import check_config

__all__ = ["check_config"]
