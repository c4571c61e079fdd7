"""Config sections (JSON/YAML dicts) into the frozen dataclasses that hold them."""

from __future__ import annotations

from typing import Any


def dataclass_fields(cls: type, data: dict, tuples: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keys of ``data`` that ``cls`` has as fields (the schema validated the rest), lists named
    in ``tuples`` made tuples so that the frozen dataclass stays hashable and compares equal."""
    fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
    return {k: tuple(v) if k in tuples else v for k, v in fields.items()}
