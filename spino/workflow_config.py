"""The workflow's config check: the registries that fill the schema's choices loaded, then
spino.config.check_config. Only the Snakefile imports this (no command's code digest includes it)."""

from __future__ import annotations

import spino.data  # noqa: F401  (registers the dataset kinds)
import spino.deploy.outputs  # noqa: F401  (registers the segment formats)
import spino.labelgen.fusion  # noqa: F401  (registers the fusion methods)
from spino.config import check_config

__all__ = ["check_config"]
