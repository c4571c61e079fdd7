"""Each extension point takes a new kind as one class (with its settings) and one registration, with
no edit in spino/: a toy instance method, head kind, fusion and dataset kind are registered here and
each runs through its path (a training run and a prediction; a head's training steps and checkpoint;
a fused label; ``spino index``). The registrations are undone after each test. tests/test_plugins.py
does the same from an installed package, through the workflow."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spino.backbone import BackboneSpec
from spino.classes import DEMO, ClassSet
from spino.config import choices_changed, owned, schema
from spino.data import DATASET_KINDS, open_dataset
from spino.data.base import Dataset, Record
from spino.data.io import read_image, write_png
from spino.data.manifest import read_manifest
from spino.encoding import LABEL_DIVISOR, semantic_of
from spino.labelgen.fusion import FUSIONS, Splitter, fuse
from spino.labelgen.head_kinds import HEAD_KINDS, UPSAMPLE, HeadKind, HeadSettings, head_properties, head_settings
from spino.labelgen.head_kinds.base import HeadKindTraining
from spino.labelgen.train import load_head, train_head
from spino.panoptic.instances import INSTANCE_METHODS
from spino.panoptic.model import ModelConfig
from spino.panoptic.predict import predict_panoptic
from spino.panoptic.sampler import samples_from
from spino.panoptic.saved_model import load_model
from spino.panoptic.train import TrainConfig, TrainingData, train_panoptic
from spino.store import LabelStore
from spino.transforms import image_tensor

from helpers import REPO, spino_here, tiny_model, training_inputs

BACKBONE = {"name": "tf_efficientnet_lite0", "weights": "none", "out_indices": [2, 3]}


@pytest.fixture
def toy(monkeypatch):
    """The toy plugin's entries, imported from its source (tests/test_plugins.py installs it instead)."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "data" / "toy_plugin"))
    return importlib.import_module("spino_toy.extensions")


@pytest.fixture
def registries(monkeypatch):
    """The registries as they are; whatever a test registers is gone after it (and from the schema)."""
    for registry in (INSTANCE_METHODS, HEAD_KINDS, FUSIONS, DATASET_KINDS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    yield
    monkeypatch.undo()
    choices_changed()


# --- an instance method: things as the connected parts of an objectness map (the toy plugin's) ---------


def test_a_new_instance_method_trains_saves_loads_and_predicts(
    registries, toy, demo_root: Path, tmp_path: Path
) -> None:
    INSTANCE_METHODS.register("blobs", toy.BLOBS)
    model_schema = schema()["properties"]["panoptic"]["properties"]["model"]["properties"]
    assert (
        "blobs" in model_schema["instance"]["enum"] and model_schema["blobs"]["properties"]["threshold"]["default"] == 0
    )
    run = training_inputs(demo_root, tmp_path / "data")
    samples = samples_from(LabelStore(run["dir"] / "gt.zarr"), run["ids"])
    model_cfg = ModelConfig.from_dict(
        {**tiny_model((48, 96), instance="blobs"), "blobs": {"threshold": 0.5}},
        BACKBONE,
    )
    cfg = TrainConfig.from_dict(
        {"steps": 4, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 4, "val_every": 4, "val_images": 0}
    )
    out = tmp_path / "model.pt"
    data = TrainingData(DEMO, samples[:2], samples[2:])
    train_panoptic(cfg, model_cfg, data, tmp_path / "work", out, "cpu", workers=0)

    losses = (tmp_path / "losses.csv").read_text().splitlines()
    assert losses[0] == "step,lr,loss,semantic,objectness" and len(losses) == 5
    model, class_set, post = load_model(out)
    assert model.cfg.instance == "blobs" and model.cfg.to_dict()["blobs"] == {"threshold": 0.5, "weight": 1.0}
    image = image_tensor(read_image(run["images"][0]), (48, 96))
    panoptic = predict_panoptic(model, image, class_set, post, (96, 192))
    assert panoptic.shape == (96, 192)  # predicted at the size asked, through the method's post-processing
    assert set(np.unique(semantic_of(panoptic))) <= set(range(DEMO.num_classes)) | {255}


# --- a head kind: which pixels are road --------------------------------------------------------------


@owned({**head_properties([8], [48, 96], 4, [0.8, 1.0]), "upsample": UPSAMPLE})
class RoadHeadSettings(HeadSettings):
    upsample: int


class RoadHead(HeadKindTraining):
    """Road or not, one logit per pixel at the feature resolution times ``upsample``."""

    def out_channels(self) -> int:
        return 1

    def target(self, label: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((semantic_of(label) == self.class_set.names.index("road")).astype(np.float32))

    def loss(self, trainer, crop, logits, target, rng) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits[:, 0], target[None])


def test_a_new_head_kind_trains_and_its_checkpoint_says_what_it_is(registries, demo_root: Path, tmp_path: Path) -> None:
    HEAD_KINDS.register("road", HeadKind(implementation=RoadHead, settings=RoadHeadSettings, description="a road head"))
    assert schema()["properties"]["road_head"]["properties"]["upsample"]["default"] == 4  # its section, its defaults
    ds = open_dataset("demo", demo_root)
    samples = [ds.read_sample(r) for r in ds.scan()[:2]]
    cfg = head_settings("road", {"lr": 0.01, "color_jitter": 0.0, "upsample": 2})
    spec = BackboneSpec.from_dict(BACKBONE)
    train_head(cfg, spec, samples, DEMO, tmp_path / "road.pt", tmp_path / "road.csv")
    losses = [float(line.split(",")[2]) for line in (tmp_path / "road.csv").read_text().splitlines()[1:]]
    assert len(losses) == 8 and losses[-1] < losses[0]  # 4 epochs of 2 images; it learns
    head_module, meta = load_head(tmp_path / "road.pt", "road")
    assert meta["out_channels"] == 1 and meta["config"]["kind"] == "road"
    with pytest.raises(Exception, match="expected a semantic head, but the file holds a road head"):
        load_head(tmp_path / "road.pt", "semantic")


# --- a fusion: every blob cut into its left and right halves -----------------------------------------


class Halves(Splitter):
    def parts(self, blob, seeds, box, minimum):
        xs = np.nonzero(blob)[1]
        middle = (xs.min() + xs.max() + 1) // 2
        parts = np.zeros(blob.shape, np.int64)
        parts[:, :middle][blob[:, :middle]] = 1
        parts[:, middle:][blob[:, middle:]] = 2
        return parts


def test_a_new_fusion_cuts_each_blob(registries) -> None:
    FUSIONS.register("halves", Halves)
    car = DEMO.names.index("car")
    semantic = np.zeros((20, 40), np.uint8)
    semantic[5:15, 4:16] = car
    semantic[2:6, 30:38] = car
    fused = fuse(semantic, np.ones_like(semantic, bool), DEMO, {}, fusion="halves")
    ids = sorted(int(i) for i in np.unique(fused) if i // LABEL_DIVISOR == car)
    assert ids == [car * LABEL_DIVISOR + n for n in (1, 2, 3, 4)]
    assert len(np.unique(fused[5:15, 4:10])) == 1 and fused[5, 4] != fused[5, 15]


# --- a dataset kind: images and .npy panoptic maps -------------------------------------------------


class NpyPairs(Dataset):
    """``<root>/<split>/<id>.png`` images, ``<id>.npy`` panoptic maps (spino's encoding) beside the labelled ones."""

    class_set: ClassSet = DEMO

    def __init__(self, root: Path, splits: list[str]):
        self.root, self.splits = root, splits

    @classmethod
    def open(cls, root, splits, classes):
        return cls(root, splits or sorted(p.name for p in root.iterdir() if p.is_dir()))

    def scan(self) -> list[Record]:
        records = []
        for split in self.splits:
            for image in sorted((self.root / split).glob("*.png")):
                label = image.with_suffix(".npy")
                records.append(Record(image.stem, split, str(image), str(label) if label.exists() else ""))
        return records

    def label_size(self, record: Record) -> tuple[int, int]:
        return np.load(record.semantic, mmap_mode="r").shape

    def decode_panoptic(self, record: Record) -> np.ndarray:
        return np.load(record.semantic)


def test_a_new_dataset_kind_is_indexed_and_its_errors_name_the_file(
    registries, demo_root: Path, tmp_path: Path
) -> None:
    DATASET_KINDS.register("npy-pairs", NpyPairs)
    demo = open_dataset("demo", demo_root)
    root = tmp_path / "pairs"
    for n, record in enumerate(demo.scan()):
        (root / record.split).mkdir(parents=True, exist_ok=True)
        write_png(root / record.split / f"{record.image_id}.png", demo.read_image(record))
        if record.split == "val" or n < 4:  # four labelled train images, the others unlabelled
            np.save(root / record.split / f"{record.image_id}.npy", demo.read_panoptic(record))
    args = ["index", "--dataset-kind", "npy-pairs", "--dataset-root", str(root), "--k", "2"]
    result = spino_here(*args, "--out", str(tmp_path / "m.csv"))
    assert result.returncode == 0, result.stderr
    entries = read_manifest(tmp_path / "m.csv")
    assert len(entries) == len(demo.scan()) and sum(e.annotated for e in entries) == 2
    assert sum(e.has_gt for e in entries if e.split == "train") == 4 and all(
        e.has_gt for e in entries if e.split == "val"
    )

    wrong = next(root.glob("val/*.npy"))
    np.save(wrong, np.zeros((5, 5), np.uint32))  # a label of the wrong size
    result = spino_here(*args, "--out", str(tmp_path / "m2.csv"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert str(wrong) in result.stderr and "label size 5x5 differs" in result.stderr
