"""Every registry that fills the config schema (choice lists and the extensions' own settings
sections: dataset kinds, fusions, head kinds, instance methods, labellers, segment formats), loaded:
import this before checking a whole config (the workflow and ``spino init`` do). Kept apart so that a
command checking one section imports only what that section needs. Every module here is torch-free."""

from __future__ import annotations

import spino.data  # noqa: F401  (registers the dataset kinds)
import spino.export  # noqa: F401  (registers the label formats of spino segment and spino export)
import spino.labelgen.fusion  # noqa: F401  (registers the fusion methods)
import spino.labelgen.head_kinds  # noqa: F401  (registers the head kinds)
import spino.labelgen.labellers  # noqa: F401  (registers the labellers)
import spino.panoptic.instances  # noqa: F401  (registers the instance methods)
from spino.config import check_config

__all__ = ["check_config"]
