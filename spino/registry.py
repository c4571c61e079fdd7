"""One shape for every extension point: a ``Registry`` maps a name to the class that implements it.

Dataset kinds, fusions, head kinds, the panoptic model's instance methods, the store export formats,
``spino segment``'s output formats and the model file formats are each one registry. A new entry is
one class and one registration (``@REGISTRY.register("name")`` on the class, or
``REGISTRY.register("name", cls)``): the config schema's choice list for the setting that names it
follows the registry (a live view, so an entry registered later, by a plug-in or a test, is a valid
choice too), and an unknown name fails in one line listing the known ones, as timm's
``create_model`` and detectron2's ``Registry.get`` do.

An entry whose code needs torch is an ``Extension``: a torch-free descriptor naming its class
(``"module:Class"``, imported when it is used) and its settings, so that the workflow plans with the
registry without loading torch. An entry may own its settings: its ``settings`` is an
``@spino.config.owned`` class, and a registry with a ``settings`` template (``pseudo_labels.{name}``
for fusions, ``{name}_head`` for head kinds) puts that class's schema into the config there,
validated and defaulted like every other setting.

Out-of-tree plugins: a registry with an entry-point ``group`` (``spino.fusions``, ...) also holds
what installed packages declare there, loaded the first time its names are asked for (a plugin's
module is imported then: its descriptors must be torch-free).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from spino.config import choices_changed, register_choices, register_settings
from spino.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Extension:
    """A registry entry that names its class without importing it: ``implementation`` is the class,
    or ``"module:Class"`` (imported by ``load``, when the entry is used), and ``settings`` its
    ``@owned`` settings class (from a torch-free module) or None."""

    implementation: str | type
    settings: type | None = None

    def load(self) -> type:
        if isinstance(self.implementation, type):
            return self.implementation
        module, name = self.implementation.split(":")
        return getattr(importlib.import_module(module), name)


class Registry(Generic[T]):
    """Name -> implementation, in registration order. ``what`` names an entry in messages ("dataset
    kind"); ``choices`` is the dotted config setting whose schema ``enum`` lists the names;
    ``settings`` the template of the config section an entry's own settings go to."""

    def __init__(self, what: str, choices: str | None = None, group: str | None = None, settings: str | None = None):
        self.what = what
        self.group = group  # the entry-point group plugins register in
        self._entries: dict[str, T] = {}
        self.origins: dict[str, str] = {}  # name -> where it comes from: "spino", or the plugin's package
        self._plugins_loaded = group is None
        if choices:
            register_choices(choices, self)
        if settings:
            register_settings(settings, self)

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry``, a class decorator that does."""
        if entry is None:
            return lambda cls: self.register(name, cls)
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        self.origins.setdefault(name, "spino")
        choices_changed()
        return entry

    @property
    def entries(self) -> dict[str, T]:
        """Every entry, the installed plugins' loaded the first time (their modules imported then)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for point in entry_points(group=self.group):
                if point.name in self._entries:
                    continue
                package = f"{point.dist.name} {point.dist.version}" if point.dist else point.value
                try:
                    entry = point.load()
                except Exception as err:  # a plugin's own error, whatever it is: named, with where it came from
                    raise InputError(
                        f"{self.what} {point.name!r} of plugin {package} ({point.value}) cannot be loaded: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                self.origins[point.name] = package
                self.register(point.name, entry)
        return self._entries

    def get(self, name: str) -> T:
        """The entry under ``name``; an InputError listing the known names otherwise."""
        if name not in self.entries:
            raise InputError(f"unknown {self.what} {name!r}; expected one of {', '.join(self.entries)}")
        return self.entries[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def items(self):
        return self.entries.items()

    def values(self):
        return self.entries.values()

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.entries)})"
