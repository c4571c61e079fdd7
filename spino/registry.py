"""One shape for every extension point: a ``Registry`` maps a name to the class that implements it.

Dataset kinds, fusions, head kinds, the panoptic model's instance methods, the store export formats,
``spino segment``'s output formats and the model file formats are each one registry. A new entry is
one class and one registration (``@REGISTRY.register("name")`` on the class, or
``REGISTRY.register("name", cls)``): the config schema's choice list for the setting that names it
follows the registry (a live view, so an entry registered later, by a plug-in or a test, is a valid
choice too), and an unknown name fails in one line listing the known ones, as timm's
``create_model`` and detectron2's ``Registry.get`` do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from spino.config import choices_changed, register_choices
from spino.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> implementation, in registration order. ``what`` names an entry in messages ("dataset
    kind"); ``choices`` is the dotted config setting whose schema ``enum`` lists the names."""

    def __init__(self, what: str, choices: str | None = None):
        self.what = what
        self._entries: dict[str, T] = {}
        if choices:
            register_choices(choices, self)

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry``, a class decorator that does."""
        if entry is None:
            return lambda cls: self.register(name, cls)
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        choices_changed()
        return entry

    def get(self, name: str) -> T:
        """The entry under ``name``; an InputError listing the known names otherwise."""
        if name not in self._entries:
            raise InputError(f"unknown {self.what} {name!r}; expected one of {', '.join(self._entries)}")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
