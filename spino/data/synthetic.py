"""The embedded demo dataset: deterministic street-like scenes written in the folder layout.

Each scene has sky, buildings with windows, trees, a road with lane marks and sidewalks (stuff), and
cars and people (things) drawn far-to-near, so that instances of one class touch and occlude each
other: telling them apart needs boundaries, not just colours. Textures and per-instance colours
keep the task non-trivial; the same seed always gives the same files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

from spino.classes import DEMO
from spino.config import section
from spino.data.io import atomic_path, write_png

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = range(7)
SEQUENCE_SEED_OFFSET = 1_000_000  # sequences draw from other generators than the still images


@section("demo")
class DemoSpec:
    n_train: int
    n_val: int
    height: int
    width: int
    seed: int


@dataclass(frozen=True)
class PersonLook:
    clothes: np.ndarray
    skin: float
    legs: np.ndarray


class _Canvas:
    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.rng = rng
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.image = np.zeros((height, width, 3), np.float32)
        self.semantic = np.full((height, width), SKY, np.uint8)
        self.instance = np.zeros((height, width), np.uint16)
        self.next_instance = 1

    def paint(self, mask: np.ndarray, cls: int, color: np.ndarray, thing: bool = False) -> None:
        self.image[mask] = color[mask] if color.ndim == 3 else color
        self.semantic[mask] = cls
        if thing:
            self.instance[mask] = self.next_instance
            self.next_instance += 1
        else:
            self.instance[mask] = 0

    def noise(self, amplitude: float) -> np.ndarray:
        return self.rng.normal(0.0, amplitude, self.image.shape).astype(np.float32)

    def tint(self, rgb, amplitude: float) -> np.ndarray:
        return np.asarray(rgb, np.float32) + self.noise(amplitude)


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (image uint8 HxWx3, semantic uint8 HxW, instance uint16 HxW with 0 = none)."""
    c = _Canvas(height, width, rng)
    horizon = int(height * rng.uniform(0.4, 0.5))
    _paint_sky_and_buildings(c, rng, height, width, horizon)
    _paint_trees(c, rng, height, width, horizon)
    _paint_ground(c, rng, height, width, horizon)
    _paint_objects(c, rng, height, width, horizon)
    image = c.image * rng.uniform(0.85, 1.15) + c.noise(4)
    return np.clip(image, 0, 255).astype(np.uint8), c.semantic, c.instance


def _paint_sky_and_buildings(c: _Canvas, rng: np.random.Generator, height: int, width: int, horizon: int) -> None:
    yy, xx = c.yy, c.xx
    sky = np.array([110, 160, 215], np.float32) + (yy / height * 60)[..., None] + c.noise(3)
    c.paint(np.ones_like(c.semantic, bool), SKY, sky)
    x = 0
    while x < width:
        w = int(rng.uniform(0.12, 0.3) * width)
        top = int(rng.uniform(0.05, 0.8) * horizon)
        base = rng.uniform(60, 150, 3)
        facade = c.tint(base, 6)
        windows = ((yy - top) % 9 < 4) & ((xx - x) % 8 < 4) & (yy > top + 3)
        facade[windows] = base * 0.45
        c.paint((xx >= x) & (xx < x + w) & (yy >= top) & (yy < horizon), BUILDING, facade)
        x += w + int(rng.integers(0, 8))


def _paint_trees(c: _Canvas, rng: np.random.Generator, height: int, width: int, horizon: int) -> None:
    yy, xx = c.yy, c.xx
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, width), horizon - rng.uniform(0.05, 0.2) * height
        r = rng.uniform(0.07, 0.14) * height
        crown = (xx - cx) ** 2 + ((yy - cy) * 1.2) ** 2 < r**2
        trunk = (abs(xx - cx) < r * 0.15) & (yy >= cy) & (yy < horizon + 2)
        leaves = c.tint([60, 120, 40], 25) * rng.uniform(0.8, 1.2)
        c.paint(crown | trunk, VEGETATION, leaves)


def _paint_ground(c: _Canvas, rng: np.random.Generator, height: int, width: int, horizon: int) -> None:
    yy, xx = c.yy, c.xx
    ground = yy >= horizon
    road = c.tint([85, 85, 90], 7)
    road[(abs(xx - width / 2) < 1.5) & ((yy // 6) % 2 == 0)] = 230
    c.paint(ground, ROAD, road)
    depth = (yy - horizon) / max(height - horizon, 1)
    left_edge = width * (0.35 - 0.4 * depth)
    right_edge = width * (0.65 + 0.4 * depth)
    tiles = c.tint([175, 170, 160], 6)
    tiles[((yy % 6) < 1) | ((xx % 10) < 1)] = 130
    sides = (xx < left_edge) | ((xx > right_edge) & (rng.random() < 0.7))
    c.paint(ground & sides, SIDEWALK, tiles)


def _paint_objects(c: _Canvas, rng: np.random.Generator, height: int, width: int, horizon: int) -> None:
    """Cars and persons, far ones first."""
    objects = [("car", horizon + rng.uniform(0.15, 1.0) * (height - horizon)) for _ in range(rng.integers(2, 6))]
    objects += [("person", horizon + rng.uniform(0.1, 1.0) * (height - horizon)) for _ in range(rng.integers(1, 5))]
    last_x = {"car": None, "person": None}
    for kind, bottom in sorted(objects, key=lambda o: o[1]):
        w, h = _object_size(rng, kind, bottom, height, horizon)
        # Half of the objects stand next to the previous one of their kind: touching or occluding.
        if last_x[kind] is not None and rng.random() < 0.5:
            cx = last_x[kind] + rng.choice([-1, 1]) * w * rng.uniform(0.6, 1.0)
        elif kind == "person":
            cx = rng.choice([rng.uniform(0, 0.3), rng.uniform(0.7, 1.0)]) * width
        else:
            cx = rng.uniform(0.25, 0.75) * width
        last_x[kind] = cx
        if kind == "car":
            _draw_car(c, cx, bottom, w, h)
        else:
            _draw_person(c, cx, bottom, w, h)


def _object_size(rng: np.random.Generator, kind: str, bottom: float, height: int, horizon: int) -> tuple[float, float]:
    """(width, height) of a car or person standing at ``bottom``: nearer is larger."""
    scale = 0.3 + 0.7 * (bottom - horizon) / (height - horizon)
    if kind == "car":
        h = scale * 0.32 * height + 6
        return h * rng.uniform(1.7, 2.3), h
    h = scale * 0.45 * height + 8
    return h * 0.32, h


def _draw_car(c: _Canvas, cx: float, bottom: float, w: float, h: float, hue: np.ndarray | None = None) -> None:
    """A car; ``hue`` its paint (drawn from the canvas' generator where None)."""
    yy, xx = c.yy, c.xx
    body = (abs(xx - cx) < w / 2) & (yy < bottom - h * 0.12) & (yy >= bottom - h * 0.6)
    cabin_half = w * 0.22 + (yy - (bottom - h)) * 0.3
    cabin = (abs(xx - cx) < cabin_half) & (yy >= bottom - h) & (yy < bottom - h * 0.6)
    wheels = np.zeros_like(body)
    for wx in (cx - w * 0.3, cx + w * 0.3):
        wheels |= (xx - wx) ** 2 + (yy - (bottom - h * 0.15)) ** 2 < (h * 0.16) ** 2
    hue = c.rng.uniform(20, 235, 3) if hue is None else hue
    paint = c.tint(hue, 5) * (1.1 - 0.3 * ((yy - (bottom - h)) / h))[..., None]
    paint[cabin & (abs(xx - cx) < cabin_half - 2) & (yy > bottom - h + 2)] = [40, 50, 70]
    paint[wheels] = 25
    c.paint(body | cabin | wheels, CAR, paint, thing=True)


def _draw_person(c: _Canvas, cx: float, bottom: float, w: float, h: float, look: PersonLook | None = None) -> None:
    """A person; ``look`` their colours (drawn from the canvas' generator where None, in the order
    the still scenes have always drawn them, so the demo dataset stays the same)."""
    yy, xx = c.yy, c.xx
    head_r = h * 0.1
    head = (xx - cx) ** 2 + (yy - (bottom - h + head_r)) ** 2 < head_r**2
    torso = ((xx - cx) / (w / 2)) ** 2 + ((yy - (bottom - h * 0.55)) / (h * 0.3)) ** 2 < 1
    legs = (abs(abs(xx - cx) - w * 0.18) < w * 0.13) & (yy >= bottom - h * 0.35) & (yy < bottom)
    clothes = c.tint(c.rng.uniform(30, 230, 3) if look is None else look.clothes, 8)
    clothes[head] = (c.rng.uniform(150, 220) if look is None else look.skin) * np.array([1.0, 0.8, 0.65])
    clothes[legs] = c.rng.uniform(20, 90, 3) if look is None else look.legs
    c.paint(head | torso | legs, PERSON, clothes, thing=True)


def write_demo(root: str | Path, spec: DemoSpec, workers: int = 1) -> None:
    """Write the demo dataset in the folder layout under ``root`` (deterministic for a spec: each
    image has its own generator, so ``workers`` processes render the same files as one; a
    2048x1024 image takes about 3 s, which a rehearsal of the paper's sizes spreads over its cores)."""
    root = Path(root)
    indices = range(spec.n_train + spec.n_val)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            image_ids = list(pool.map(_write_scene, [root] * len(indices), [spec] * len(indices), indices))
    else:
        image_ids = [_write_scene(root, spec, index) for index in indices]
    splits = {"train": image_ids[: spec.n_train], "val": image_ids[spec.n_train :]}
    for split, ids in splits.items():
        with atomic_path(root / "splits" / f"{split}.txt") as tmp:
            tmp.write_text("".join(f"{i}\n" for i in ids))
    _write_description(root, spec.__dict__)


def _write_scene(root: Path, spec: DemoSpec, index: int) -> str:
    """The demo's image ``index`` and its labels, written; its id."""
    image_id = f"demo_{index:04d}"
    image, semantic, instance = render_scene(np.random.default_rng([spec.seed, index]), spec.height, spec.width)
    write_png(root / "images" / f"{image_id}.png", image)
    write_png(root / "semantic" / f"{image_id}.png", semantic)
    write_png(root / "instances" / f"{image_id}.png", instance)
    return image_id


@dataclass(frozen=True)
class _Mover:
    """One car or person of a sequence: where it stands, how fast it crosses, how it looks."""

    track: int
    kind: str
    x: float  # centre at frame 0 (pixels; may start outside the view)
    speed: float  # pixels per frame, signed
    bottom: float
    width: float
    height: float
    look: np.ndarray | PersonLook

    def draw(self, c: _Canvas, frame: int) -> None:
        c.next_instance = self.track  # paint numbers the instance: by its track, the same in every frame
        draw = _draw_car if self.kind == "car" else _draw_person
        draw(c, self.x + self.speed * frame, self.bottom, self.width, self.height, self.look)


def _movers(rng: np.random.Generator, height: int, width: int, horizon: int) -> list[_Mover]:
    movers = []
    for kind, count, nearest, speeds in (
        ("car", rng.integers(2, 6), 0.15, (0.01, 0.035)),
        ("person", rng.integers(1, 5), 0.1, (0.003, 0.01)),
    ):
        for _ in range(count):
            bottom = horizon + rng.uniform(nearest, 1.0) * (height - horizon)
            w, h = _object_size(rng, kind, bottom, height, horizon)
            if kind == "car":
                look = rng.uniform(20, 235, 3)
            else:
                look = PersonLook(rng.uniform(30, 230, 3), rng.uniform(150, 220), rng.uniform(20, 90, 3))
            speed = rng.uniform(*speeds) * width * rng.choice([-1, 1])
            movers.append(_Mover(len(movers) + 1, kind, rng.uniform(-0.1, 1.1) * width, speed, bottom, w, h, look))
    return movers


def render_sequence(
    rng: np.random.Generator, height: int, width: int, frames: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The frames of one street seen by a still camera, as render_scene's triples: the still scenes'
    background, cars and people crossing it at their own speeds (entering and leaving the view,
    passing in front of and behind each other), each instance numbered by its track in every frame
    (the ground truth of video panoptic metrics). Sensor noise changes from frame to frame."""
    c = _Canvas(height, width, rng)
    horizon = int(height * rng.uniform(0.4, 0.5))
    _paint_sky_and_buildings(c, rng, height, width, horizon)
    _paint_trees(c, rng, height, width, horizon)
    _paint_ground(c, rng, height, width, horizon)
    background, background_semantic = c.image.copy(), c.semantic.copy()
    movers = sorted(_movers(rng, height, width, horizon), key=lambda m: m.bottom)  # far ones first
    brightness = rng.uniform(0.85, 1.15)
    for frame in range(frames):
        c.image[:], c.semantic[:], c.instance[:] = background, background_semantic, 0
        for mover in movers:
            mover.draw(c, frame)
        image = c.image * brightness + c.noise(4)
        yield np.clip(image, 0, 255).astype(np.uint8), c.semantic.copy(), c.instance.copy()


def write_demo_sequences(root: str | Path, spec: DemoSpec, frames: int, sequences: int) -> None:
    """Write ``sequences`` demo sequences of ``frames`` frames under ``root`` in the video folder
    layout (``images|semantic|instances/<sequence>/<frame>.png``, instance numbers = track ids;
    read by spino.data.video), deterministic for a spec."""
    root = Path(root)
    for index in range(sequences):
        sequence = f"seq_{index:04d}"
        rng = np.random.default_rng([spec.seed, SEQUENCE_SEED_OFFSET + index])
        for frame, (image, semantic, instance) in enumerate(render_sequence(rng, spec.height, spec.width, frames)):
            write_png(root / "images" / sequence / f"{frame:06d}.png", image)
            write_png(root / "semantic" / sequence / f"{frame:06d}.png", semantic)
            write_png(root / "instances" / sequence / f"{frame:06d}.png", instance)
    _write_description(root, {**spec.__dict__, "frames": frames, "sequences": sequences})


def _write_description(root: Path, settings: dict) -> None:
    """The demo class set (``classes.yaml``) and the settings that made the data (``demo.json``)."""
    with atomic_path(root / "classes.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(DEMO.to_dict(), sort_keys=False))
    with atomic_path(root / "demo.json") as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
