"""The labeller a pseudo-label job runs: the trained heads, or the PriMaPs prototypes."""

from __future__ import annotations

from pathlib import Path

from spino.errors import InputError
from spino.labelgen.labeller import Labeller


def open_labeller(
    primaps: Path | None,
    semantic_head: Path | None,
    boundary_head: Path | None,
    settings: dict | None,
    embedding_head: Path | None,
    device: str,
) -> Labeller:
    """PriMaPs prototypes when given (label-free), else the heads with the pseudo-label settings."""
    if primaps:
        from spino.labelgen.primaps import load_primaps

        return load_primaps(primaps, device)
    if not (semantic_head and boundary_head and settings is not None):
        raise InputError("pseudo-label needs --primaps, or --semantic-head, --boundary-head and --settings")
    from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig

    return LabelGenerator(semantic_head, boundary_head, PseudoLabelConfig.from_dict(settings), device, embedding_head)
