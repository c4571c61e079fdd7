"""Class sets: which classes a dataset has, which are things, how to draw and export them.

A class set is indexed by *train ids* 0..C-1 (the ids every array in spino holds); 255 is ignore.
Cityscapes-style exports need the dataset's own *label ids*, kept in ``label_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from spino.errors import InputError, MissingFileError

IGNORE = 255
CLASSES_SCHEMA = Path(__file__).parent / "schemas" / "classes.schema.yaml"


@dataclass(frozen=True)
class ClassSet:
    """Names, thing/stuff flags and colours of the C classes of a dataset."""

    name: str
    names: tuple[str, ...]
    thing: tuple[bool, ...]
    colors: tuple[tuple[int, int, int], ...]
    label_ids: tuple[int, ...] = field(default=())
    ignored_label_ids: tuple[int, ...] = field(default=())
    # further label ids that join a class, as (label id, train id): KITTI-360's motorcycle in two-wheeler
    merged_label_ids: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.names)
        if not 0 < n < IGNORE:
            raise InputError(f"class set {self.name!r}: needs 1..254 classes, got {n}")
        if len(self.thing) != n or len(self.colors) != n:
            raise InputError(f"class set {self.name!r}: names, thing and colors differ in length")
        if self.label_ids and len(self.label_ids) != n:
            raise InputError(f"class set {self.name!r}: label_ids must have one entry per class")
        if self.label_ids and (0 in self.label_ids or max(self.label_ids) >= IGNORE):
            raise InputError(f"class set {self.name!r}: label ids must be in 1..254 (0 is void)")
        if len(set(self.names)) != n:
            raise InputError(f"class set {self.name!r}: class names must be unique")
        merged = [label for label, _ in self.merged_label_ids]
        if merged and not self.label_ids:
            raise InputError(f"class set {self.name!r}: merged label ids need label ids")
        if len(set(merged)) != len(merged) or set(merged) & set(self.label_ids) | set(merged) & set(
            self.ignored_label_ids
        ):
            raise InputError(f"class set {self.name!r}: label ids {sorted(merged)} merged into classes are taken twice")
        if any(not 0 < label < IGNORE or not 0 <= train < n for label, train in self.merged_label_ids):
            raise InputError(f"class set {self.name!r}: merged label ids must be in 1..254 and join one of its classes")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def stuff_ids(self) -> list[int]:
        return [i for i, t in enumerate(self.thing) if not t]

    @property
    def thing_ids(self) -> list[int]:
        return [i for i, t in enumerate(self.thing) if t]

    def export_label_ids(self) -> tuple[int, ...]:
        """Ids written to exported label PNGs: the dataset's label ids, or the train ids."""
        return self.label_ids or tuple(range(self.num_classes))

    @property
    def void_label_id(self) -> int:
        """Label id of void pixels in label PNGs: 0 (Cityscapes style) with label ids, else 255."""
        return 0 if self.label_ids else IGNORE

    def label_to_train(self) -> tuple[np.ndarray, np.ndarray]:
        """Lookups over label ids 0..255: the train id (255 for ignored ids) and whether the id is known."""
        lut = np.full(256, IGNORE, dtype=np.uint8)
        lut[list(self.export_label_ids())] = np.arange(self.num_classes, dtype=np.uint8)
        for label, train in self.merged_label_ids:
            lut[label] = train
        known = np.zeros(256, dtype=bool)
        known[list(self.export_label_ids()) + list(self.ignored_label_ids) + [self.void_label_id]] = True
        known[[label for label, _ in self.merged_label_ids]] = True
        return lut, known

    def thing_mask(self) -> np.ndarray:
        """Boolean lookup of length 256: is this train id a thing class."""
        lut = np.zeros(256, dtype=bool)
        lut[self.thing_ids] = True
        return lut

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 colour lookup; ignore is black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.array(self.colors, dtype=np.uint8)
        return lut

    def to_dict(self) -> dict:
        """The class set as its YAML form; a class with merged label ids lists them after its own."""

        def label_id(k: int) -> dict:
            if not self.label_ids:
                return {}
            merged = [label for label, train in self.merged_label_ids if train == k]
            return {"label_id": [self.label_ids[k], *merged] if merged else self.label_ids[k]}

        return {
            "name": self.name,
            "classes": [
                {"name": n, "thing": t, "color": list(c), **label_id(k)}
                for k, (n, t, c) in enumerate(zip(self.names, self.thing, self.colors))
            ],
            **({"ignored_label_ids": list(self.ignored_label_ids)} if self.ignored_label_ids else {}),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "class set") -> ClassSet:
        try:
            entries = data["classes"]
            names = tuple(str(e["name"]) for e in entries)
            thing = tuple(bool(e.get("thing", False)) for e in entries)
            colors = tuple(tuple(int(v) for v in e.get("color", _default_color(i))) for i, e in enumerate(entries))
            with_ids = [e for e in entries if "label_id" in e]
            ids = [e["label_id"] if isinstance(e["label_id"], list) else [e["label_id"]] for e in with_ids]
            label_ids = tuple(int(i[0]) for i in ids) if len(ids) == len(entries) else ()
            merged = tuple((int(extra), k) for k, i in enumerate(ids) for extra in i[1:]) if label_ids else ()
        except (KeyError, TypeError) as err:
            raise InputError(f"{source}: each class needs a 'name' (and optional thing, color): {err}") from err
        if with_ids and len(with_ids) != len(entries):
            raise InputError(f"{source}: give label_id for every class or for none")
        ignored = tuple(int(i) for i in data.get("ignored_label_ids", ()))
        return cls(str(data.get("name", source)), names, thing, colors, label_ids, ignored, merged)


def _default_color(i: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(i + 1)
    return tuple(int(v) for v in rng.integers(40, 256, 3))


def _build(
    name: str, rows: list[tuple[str, bool, tuple[int, int, int], int | tuple[int, ...]]], num_label_ids: int = 0
) -> ClassSet:
    """A class set from (name, thing, colour, label id or ids) rows; label ids below num_label_ids
    not used are ignored. A row's further label ids are merged into its class."""
    ids = [r[3] if isinstance(r[3], tuple) else (r[3],) for r in rows]
    merged = tuple((extra, k) for k, i in enumerate(ids) for extra in i[1:])
    used = {i for row in ids for i in row}
    return ClassSet(
        name,
        tuple(r[0] for r in rows),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
        tuple(i[0] for i in ids),
        tuple(i for i in range(num_label_ids) if i not in used),
        merged,
    )


# Cityscapes' labels (name, thing, official colour, label id); the 19 evaluation classes in trainId order.
CITYSCAPES_ROWS = [
    ("road", False, (128, 64, 128), 7),
    ("sidewalk", False, (244, 35, 232), 8),
    ("building", False, (70, 70, 70), 11),
    ("wall", False, (102, 102, 156), 12),
    ("fence", False, (190, 153, 153), 13),
    ("pole", False, (153, 153, 153), 17),
    ("traffic light", False, (250, 170, 30), 19),
    ("traffic sign", False, (220, 220, 0), 20),
    ("vegetation", False, (107, 142, 35), 21),
    ("terrain", False, (152, 251, 152), 22),
    ("sky", False, (70, 130, 180), 23),
    ("person", True, (220, 20, 60), 24),
    ("rider", True, (255, 0, 0), 25),
    ("car", True, (0, 0, 142), 26),
    ("truck", True, (0, 0, 70), 27),
    ("bus", True, (0, 60, 100), 28),
    ("train", True, (0, 80, 100), 31),
    ("motorcycle", True, (0, 0, 230), 32),
    ("bicycle", True, (119, 11, 32), 33),
]
CITYSCAPES_19 = _build("cityscapes-19", CITYSCAPES_ROWS, num_label_ids=34)

# KITTI-360 14 classes used by SPINO: Cityscapes' without wall, traffic light, bus, train, and with
# two-wheeler merging motorcycle and bicycle. Label ids follow KITTI-360's own labels.py (the same
# as Cityscapes' for these): bicycle's id 33 stands for the merged class in exports, motorcycle's
# 32 joins it.
KITTI360_14 = _build(
    "kitti360-14",
    [row for row in CITYSCAPES_ROWS if row[0] not in ("wall", "traffic light", "bus", "train", "motorcycle", "bicycle")]
    + [("two-wheeler", True, (119, 11, 32), (33, 32))],
    num_label_ids=45,
)

# The synthetic demo's street-like classes (see spino.data.synthetic).
DEMO = ClassSet(
    "demo",
    ("road", "sidewalk", "building", "vegetation", "sky", "person", "car"),
    (False, False, False, False, False, True, True),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142)),
)

BUILTIN = {c.name: c for c in (CITYSCAPES_19, KITTI360_14, DEMO)}


def load_class_set(spec: str | Path) -> ClassSet:
    """A built-in class set by name, or a user's YAML file (see docs/your-data.md)."""
    if str(spec) in BUILTIN:
        return BUILTIN[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise MissingFileError(
            f"class set {str(spec)!r}: neither a built-in ({', '.join(BUILTIN)}) nor an existing YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from err
    check_class_file(data, path)
    return ClassSet.from_dict({"name": path.stem, **data}, source=str(path))


def check_class_file(data: object, path: Path) -> None:
    """Validate a classes.yaml against spino/schemas/classes.schema.yaml; the error names the file and the entry."""
    import jsonschema

    schema = yaml.safe_load(CLASSES_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = (
            "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "top level"
        )
        raise InputError(f"{path}: {where}: {error.message}")
