"""The config: one schema (``spino/schemas/config.schema.yaml``) states every setting's type, range,
description and default; the dataclasses that hold the sections take their defaults from it.

- ``check_config``: a whole config (the workflow's) validated, defaults filled in; an error names
  the setting's path (``panoptic.train.augment.flipp: unknown setting ...``) in one line.
- ``@section("panoptic.train.postprocess")``: a frozen dataclass whose field defaults are the
  schema's; a default also written in the class body is refused at import, so no default can
  exist twice.
- ``load(cls, data, path)``: a section (JSON from the workflow, or a checkpoint's) into its
  dataclass, recursively, validated against its part of the schema, unknown keys named by path.
- ``@owned(properties)``: the settings of one extension (a head kind, an instance method, a fusion,
  a labeller, in spino or in a plugin): the extension states its schema beside its class, and the
  registry that holds it puts the section into the config at ``<its section>.<name>``. The schema
  file keeps only the pipeline-wide settings; the choice lists of the settings that name an
  extension are the registries' names.

The schema is the source rather than the dataclasses because it is also what the workflow
validates against (Snakemake catalog convention) and it says more (ranges, alternatives, the
label-free run's conditional requirements) than type hints can.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from spino.errors import InputError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
SECTIONS: dict[str, type] = {}  # schema path -> the dataclass holding that section
# Settings that moved, old path -> new path: a config that still has one fails naming the new place.
MOVED = {
    "panoptic.train.center_weight": "panoptic.model.center_offset.center_weight",
    "panoptic.train.offset_weight": "panoptic.model.center_offset.offset_weight",
    "panoptic.train.targets.sigma": "panoptic.model.center_offset.sigma",
    **{
        f"panoptic.train.postprocess.{name}": f"panoptic.model.center_offset.{name}"
        for name in ("center_threshold", "nms_kernel", "top_k", "chunk_pixels")
    },
}
CHOICES: dict[str, Iterable[str]] = {}  # setting path -> the registry whose names are its choices (live)
SETTINGS: dict[str, Any] = {}  # section path -> the registry whose entries may own settings there (live)


@cache
def raw_schema() -> dict:
    """The schema file as written (what the dataclasses' defaults come from, at import)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def register_choices(path: str, registry: Iterable[str]) -> None:
    """A registry's names as the choices of the setting at ``path`` (dataset kinds, fusions): the
    registry calls this, so that this module imports none of them (a command's code digest, the
    closure of its imports, then does not grow with every registry)."""
    CHOICES[path] = registry
    schema.cache_clear()


def register_settings(template: str, registry: Any) -> None:
    """A registry whose entries may own settings: an entry's ``settings`` (an ``@owned`` class) is the
    section ``template.format(name=<its name>)`` of the schema (``pseudo_labels.{name}`` for a fusion,
    ``{name}_head`` for a head kind)."""
    SETTINGS[template] = registry
    schema.cache_clear()


def choices_changed() -> None:
    """A registry gained an entry: the schema's choice lists are read again."""
    schema.cache_clear()


@cache
def schema() -> dict:
    """The config schema, with the choices that registries registered filled in."""
    data = copy.deepcopy(raw_schema())
    for path, names in CHOICES.items():
        *parents, name = path.split(".")
        node = data
        for part in parents:
            node = node["properties"][part]
        node["properties"][name]["enum"] = list(names)
    for template, registry in SETTINGS.items():
        for name, entry in registry.items():
            owned_class = getattr(entry, "settings", None)
            if owned_class is None:
                continue
            *parents, key = template.format(name=name).split(".")
            node = data
            for part in parents:
                node = node["properties"][part]
            if key in node["properties"]:
                where = ".".join([*parents, key])
                raise InputError(
                    f"{registry.what} {name!r} ({registry.origins[name]}): its settings section {where} is a setting of spino's already"
                )
            node["properties"][key] = {
                **owned_class.schema,
                "description": f"settings of {registry.what} {name} ({registry.origins[name]})",
            }
    return data


def owned(properties: str | dict):
    """Make a class the frozen dataclass of an extension's own settings. ``properties`` (JSON-schema
    properties, as YAML text or a mapping; every setting with its default, ``$ref`` to the schema
    file's definitions allowed) is its schema, kept on the class as ``schema``; the fields' defaults
    are the schema's. Fields may be inherited from a plain base class (head kinds share theirs), each
    class stating every default in its own schema."""

    def wrap(cls: type) -> type:
        props = yaml.safe_load(properties) if isinstance(properties, str) else copy.deepcopy(properties)
        annotations = {}
        for base in reversed(cls.__mro__[:-1]):
            annotations.update(base.__dict__.get("__annotations__", {}))
        cls.__annotations__ = annotations
        cls.schema = {"type": "object", "additionalProperties": False, "properties": props, "default": {}}
        hints = typing.get_type_hints(cls)
        for name in annotations:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{name}: default stated in the class and in its schema")
            if name not in props:
                continue
            if "default" not in props[name]:
                raise TypeError(f"{cls.__name__}.{name}: its schema states no default")
            setattr(cls, name, _converted(hints[name], copy.deepcopy(props[name]["default"]), name))
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls.config_path = None  # where it sits in the config is the registry's to say
        return cls

    return wrap


def section_schema(path: str, registries: bool = False) -> dict:
    """The schema of the setting at a dotted path, ``$ref``s resolved (the registries' choices filled
    in if asked: importing them is not possible while the modules that define sections load)."""
    node = schema() if registries else raw_schema()
    for part in path.split("."):
        node = _resolved(node)["properties"][part]
    return _resolved(node)


def _resolved(node: dict) -> dict:
    while "$ref" in node:
        target: Any = raw_schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_default(path: str) -> Any:
    """The schema's default of one setting (a fresh copy)."""
    node = section_schema(path)
    if "default" not in node:
        raise KeyError(f"{path} has no default in {SCHEMA_PATH}")
    return copy.deepcopy(node["default"])


def check_config(config: dict) -> dict:
    """The config validated against the schema, with every default filled in (a new dict): the
    schema's, then those derived from other settings. The workflow calls it through
    spino.workflow_config, which loads the registries first."""
    if not isinstance(config, dict):
        raise InputError(f"the config: expected a mapping of settings, got {type(config).__name__}")
    _validate(config, "", every=True)
    config = derived_defaults(_with_defaults(copy.deepcopy(config), schema()))
    _check_soft_targets(config)
    return config


def _check_soft_targets(config: dict) -> None:
    """Soft targets need the runner-up classes in the store, which only the trained heads give."""
    if config["pseudo_labels"]["top2"] and config["labelgen"] == "primaps":
        raise InputError("pseudo_labels.top2: PriMaPs labels carry no class probabilities (labelgen: primaps)")
    if config["panoptic"]["train"]["confidence"]["semantic"] == "soft" and not config["pseudo_labels"]["top2"]:
        raise InputError(
            "panoptic.train.confidence.semantic: soft needs pseudo_labels.top2: true (the store's runner-up classes)"
        )


def derived_defaults(config: dict) -> dict:
    """The settings whose default (``null`` in the schema) follows from others: the annotated images
    come from the first split, every split is pseudo-labelled, the panoptic model trains on the
    annotation split and is scored on the others (none left: trained, not scored); the next review
    round follows the corrections taken."""
    splits = config["dataset"]["splits"]
    annotation = config["annotation"]
    annotation["split"] = annotation["split"] or splits[0]
    pseudo = config["pseudo_labels"]
    pseudo["splits"] = pseudo["splits"] or list(splits)
    review = config["review"]
    review["round"] = review["round"] or len(annotation["corrections"]) + 1
    panoptic = config["panoptic"]
    if panoptic["train_splits"] is None:
        panoptic["train_splits"] = [annotation["split"]]
    if panoptic["eval_splits"] is None:
        panoptic["eval_splits"] = [s for s in splits if s != annotation["split"]]
    return config


def _validate(data: Any, path: str, every: bool = False, node: dict | None = None) -> None:
    """Raise an InputError naming the first wrong setting of ``data`` (the setting at ``path``; "":
    all; ``node``: its schema, where not the config's), or with ``every``, every wrong setting, one
    line each."""
    node = node or (section_schema(path, registries=True) if path else schema())
    validator = Draft202012Validator({"definitions": schema()["definitions"], **node})
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        lines = list(dict.fromkeys(_message(e, path) for e in errors))
        raise InputError("\n".join(lines if every else lines[:1]))


def _message(error, prefix: str) -> str:
    where = ".".join([prefix] * bool(prefix) + [str(p) for p in error.absolute_path])
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        keys = [f"{where}.{name}" if where else name for name in sorted(set(error.instance) - set(known))]
        return "\n".join(
            f"{key}: moved to {MOVED[key]}"
            if key in MOVED
            else f"{key}: unknown setting; {where or 'the config'} takes {', '.join(known)}"
            for key in keys
        )
    if error.validator == "oneOf" and all("required" in alt for alt in error.validator_value):
        names = " or ".join(alt["required"][0] for alt in error.validator_value)
        return f"{where or 'config'}: give exactly one of {names}"
    if error.validator in ("oneOf", "anyOf"):
        # a setting of several forms (a number, or one per name): the form the value has says what is
        # wrong with it, not "valid under none of the schemas"
        fitting = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
        if fitting:
            return _message(fitting[0], prefix)
    if error.validator == "required":
        name = error.message.split("'")[1]  # jsonschema: "'<name>' is a required property", one error per name
        return f"{where + '.' if where else ''}{name}: required setting missing"
    return f"{where or 'config'}: {error.message}"


def _with_defaults(data: Any, node: dict) -> Any:
    node = _resolved(node)
    if not isinstance(data, dict) or "properties" not in node:
        return data
    for key, sub in node["properties"].items():
        sub = _resolved(sub)
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            data[key] = _with_defaults(data[key], sub)
    return data


def section(path: str):
    """Make a class a frozen dataclass holding the config section at ``path``, its defaults the schema's."""

    def wrap(cls: type) -> type:
        properties = section_schema(path)["properties"]
        hints = typing.get_type_hints(cls)
        for name in cls.__dict__.get("__annotations__", {}):
            if name not in properties or "default" not in _resolved(properties[name]):
                continue
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{name}: default stated in the class and in the schema ({path}.{name})")
            setattr(cls, name, _field_default(hints[name], schema_default(f"{path}.{name}"), f"{path}.{name}"))
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls.config_path = path
        SECTIONS[path] = cls
        return cls

    return wrap


def _field_default(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint) or hasattr(hint, "config_path"):
        return dataclasses.field(default_factory=lambda: load(hint, value, path))
    return _converted(hint, value, path)


def settings_of(obj: Any) -> dict:
    """A section dataclass as the settings it holds (nested sections as mappings, tuples as lists):
    what ``load`` takes back."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return settings_of(value)
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def load(cls: type, data: dict, path: str | None = None, **extra: Any):
    """A section into its dataclass: validated against the schema at ``path`` (default: the class's),
    missing settings from the schema's defaults, nested sections recursively. Settings of the schema
    that the class has no field for are for the workflow and are left out; ``extra`` fills fields
    that are not settings."""
    path = path or cls.config_path
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    own = cls.__dict__.get("schema")  # an @owned class: its schema, wherever its registry puts it
    node = own or section_schema(path)
    _validate(data, path, node=own)
    hints = typing.get_type_hints(cls)
    values = dict(extra)
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        if f.name in data:
            values[f.name] = _converted(hints[f.name], data[f.name], f"{path}.{f.name}")
        elif "default" in (sub := _resolved(node["properties"].get(f.name, {}))):
            values[f.name] = _converted(hints[f.name], copy.deepcopy(sub["default"]), f"{path}.{f.name}")
    return cls(**values)


def _converted(hint: Any, value: Any, path: str) -> Any:
    """A setting as its field holds it: nested sections as dataclasses, lists as tuples (hashable)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return load(hint, value, path)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return _tupled(value)
    return value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def images_per_shard(setting: int | Mapping[str, int], store: str) -> int:
    """A store's shard size from config ``stores.images_per_shard``: one number for every store, or one
    per store, the schema's default for a store it leaves out (a prediction costs a fraction of a
    labelling, so its jobs may take more images)."""
    schema = section_schema("stores.images_per_shard")
    stores = next(option["properties"] for option in schema["oneOf"] if option["type"] == "object")
    if store not in stores:
        raise ValueError(f"unknown store {store!r}: one of {', '.join(stores)}")
    if isinstance(setting, Mapping):
        return int(setting.get(store, schema["default"]))
    return int(setting)
