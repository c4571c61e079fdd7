"""The config: every default stated once (in the schema), unknown settings named by their path."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing

import pytest
import yaml

import spino
from spino.config import (
    SECTIONS,
    choices_changed,
    images_per_shard,
    load,
    owned,
    schema_default,
    section,
    section_schema,
)
from spino.errors import InputError
from spino.panoptic.model import ModelConfig
from spino.panoptic.train import TrainConfig
from spino.workflow_config import check_config

from helpers import REPO, TINY


def _all_modules() -> None:
    """Import every spino module, so that every config section is registered."""
    for module in pkgutil.walk_packages(spino.__path__, "spino."):
        if module.name != "spino.__main__":  # that one runs the command
            importlib.import_module(module.name)


def _tupled(value):
    """A schema default as a frozen dataclass holds it (lists, nested too, as tuples)."""
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def test_a_default_in_the_class_and_in_the_schema_is_refused() -> None:
    with pytest.raises(
        TypeError,
        match=r"flip: default stated in the class and in the schema \(panoptic.train.postprocess.flip\)",
    ):

        @section("panoptic.train.postprocess")
        class Twice:
            flip: bool = True

    with pytest.raises(TypeError, match=r"Twice.radius: default stated in the class and in its schema"):

        @owned("radius: {type: integer, default: 3}")
        class Twice:  # noqa: F811  (an extension's own settings: the same rule)
            radius: int = 4


def test_every_section_default_is_the_schema_default() -> None:
    """The dataclasses hold the schema's values (a default edited in one place only fails here)."""
    _all_modules()
    assert {"panoptic.train", "pseudo_labels", "backbone", "demo", "self_training"} <= SECTIONS.keys()
    checked = 0
    for path, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            node = section_schema(path)["properties"].get(f.name, {})
            if "default" not in node:
                assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, (path, f.name)
                continue
            value = f.default_factory() if f.default is dataclasses.MISSING else f.default
            expected = (
                load(hints[f.name], schema_default(f"{path}.{f.name}"), f"{path}.{f.name}")
                if dataclasses.is_dataclass(hints[f.name])
                else schema_default(f"{path}.{f.name}")
            )
            assert value == _tupled(expected), (path, f.name)
            checked += 1
    assert checked >= 60


def test_the_command_line_defaults_are_the_config_defaults() -> None:
    from spino.cli import build_parser

    def command(name: str):
        return build_parser(name)._subparsers._group_actions[0].choices[name]  # argparse keeps the subparsers here

    demo = {
        a.dest: a.default
        for a in command("make-demo")._actions
        if a.dest in ("n_train", "n_val", "height", "width", "seed")
    }
    assert demo == {key: schema_default(f"demo.{key}") for key in demo} and len(demo) == 5
    workers = next(a.default for a in command("train-panoptic")._actions if a.dest == "workers")
    assert workers == schema_default("panoptic.loader_workers")


def test_an_unknown_setting_deep_inside_is_named_by_its_path() -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["panoptic"]["train"]["augment"]["flipp"] = True
    with pytest.raises(
        InputError, match=r"^panoptic\.train\.augment\.flipp: unknown setting; panoptic\.train\.augment takes flip, "
    ):
        check_config(config)
    with pytest.raises(InputError, match=r"^panoptic\.train\.augment\.flipp: unknown setting"):
        TrainConfig.from_dict({"steps": 2, "augment": {"flipp": True}})
    with pytest.raises(
        InputError, match=r"^panoptic\.train\.schedule\.power: -1 is less than or equal to the minimum of 0"
    ):
        TrainConfig.from_dict({"steps": 2, "schedule": {"power": -1}})


def test_a_moved_setting_names_its_new_place_one_line_each() -> None:
    """Centre/offset's settings moved into its own section: a config written before says where each went."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["panoptic"]["train"].update({"center_weight": 20.0, "offset_weight": 0.1})
    config["panoptic"]["train"]["targets"]["sigma"] = 3.0
    config["panoptic"]["train"]["postprocess"] = {"nms_kernel": 5, "stuff_area": 0}
    with pytest.raises(InputError) as caught:
        check_config(config)
    assert str(caught.value).splitlines() == [
        "panoptic.train.center_weight: moved to panoptic.model.center_offset.center_weight",
        "panoptic.train.offset_weight: moved to panoptic.model.center_offset.offset_weight",
        "panoptic.train.postprocess.nms_kernel: moved to panoptic.model.center_offset.nms_kernel",
        "panoptic.train.targets.sigma: moved to panoptic.model.center_offset.sigma",
    ]


def test_a_model_file_of_format_1_reads_with_its_settings_where_they_are_now() -> None:
    """A safetensors or ONNX file written before the move (metadata spino-panoptic/1: the centre
    grouping's settings in the post-processing) gives the same model settings as one written today."""
    import json
    from pathlib import Path

    from spino.classes import DEMO
    from spino.deploy.model_files import metadata, parse_metadata
    from spino.panoptic.postprocess import PostprocessConfig

    model_cfg = ModelConfig.from_dict(
        {"channels": 16, "center_offset": {"nms_kernel": 5, "top_k": 50}},
        {"name": "tf_efficientnet_lite0", "weights": "none"},
    )
    today = json.loads(metadata(model_cfg, DEMO, PostprocessConfig(stuff_area=64)))
    old = {**json.loads(json.dumps(today)), "format": "spino-panoptic/1"}
    grouping = old["model_config"].pop("center_offset")
    old["postprocess"] = {
        **today["postprocess"],
        **{k: grouping[k] for k in ("center_threshold", "nms_kernel", "top_k", "chunk_pixels")},
    }
    read = parse_metadata(json.dumps(old), Path("old.safetensors"))
    assert read[0].instance_settings.nms_kernel == 5 and read[0].instance_settings.top_k == 50
    assert read[0] == model_cfg and read[2] == PostprocessConfig(stuff_area=64)
    assert parse_metadata(json.dumps(today), Path("new.safetensors"))[0] == model_cfg


def test_check_config_fills_the_defaults_the_sections_use() -> None:
    config = check_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    assert config["pseudo_labels"]["ncut"] == {"max_cost": 0.01, "radius": 3, "sigma": 0.1, "max_nodes": 1500}
    assert (
        ModelConfig.from_dict(config["panoptic"]["model"], config["backbone"]).instance_settings.nms_kernel
        == config["panoptic"]["model"]["center_offset"]["nms_kernel"]
    )
    with pytest.raises(
        InputError,
        match=r"^dataset\.kind: 'kitti' is not one of \['demo', 'folder', 'cityscapes', 'kitti360', 'coco'\]",
    ):
        check_config({**config, "dataset": {**config["dataset"], "kind": "kitti"}})


def _schema_has(path: str) -> bool:
    import spino.choices  # noqa: F401  (the extensions' own sections too)

    try:
        section_schema(path, registries=True)
    except KeyError:
        return False
    return True


def test_config_readme_names_only_settings_of_the_schema() -> None:
    """config/README.md describes the settings; the schema states them: every key the table names exists."""
    table = [line for line in (REPO / "config" / "README.md").read_text().splitlines() if line.startswith("| `")]
    named = 0
    for row in table:
        keys = re.findall(r"`([^`]+)`", row.split(" | ")[0])
        prefix = keys[0].rsplit(".", 1)[0] if "." in keys[0] else ""
        for key in keys:
            key = key.split(":")[0].strip()
            if key.startswith("."):
                key = prefix + key
            key = key.removesuffix(".*")
            paths = [key.replace("*", kind) for kind in ("semantic", "boundary", "embedding")] if "*" in key else [key]
            assert any(_schema_has(p) for p in paths), f"config/README.md names {key!r}, which the schema has not"
            named += 1
    assert named >= 60
    kind_comment = next(
        line
        for line in (REPO / "config" / "config.yaml").read_text().splitlines()
        if line.strip().startswith("kind: demo")
    )
    from spino.data import DATASET_KINDS

    assert kind_comment.split("#")[1].split() == " | ".join(DATASET_KINDS).split()


def test_the_your_coco_example_is_what_spino_init_writes_for_such_an_export() -> None:
    """config/examples/your-coco.yaml, the file a user copies, holds the cpu profile spino init writes
    for a CVAT export of 1024x512 images (one split, categories without isthing): the two stay in step."""
    from collections import Counter
    from pathlib import Path

    from spino.data.survey import Survey
    from spino.starter_config import starter_config

    found = Survey(
        Path("data/my-export"),
        "coco",
        ["default"],
        class_names=["road", "sky", "person", "car"],
        things=["person", "car"],
        things_proposed=True,
        labelled=Counter(default=13),
        unlabelled=Counter(default=39),
        sizes=Counter({(512, 1024): 52}),
    )
    written = yaml.safe_load(starter_config(found, "cpu", "your-coco"))
    example = yaml.safe_load((REPO / "config" / "examples" / "your-coco.yaml").read_text())
    assert written == example
    profile = starter_config(found, "cpu", "your-coco").split("# profile cpu")[1]
    assert profile in (REPO / "config" / "examples" / "your-coco.yaml").read_text()


REGISTRIES = {  # schema setting -> the registry whose names are its choices, and where its entries' settings go
    "dataset.kind": ("spino.data:DATASET_KINDS", None),
    "pseudo_labels.fusion": ("spino.labelgen.fusion:FUSIONS", "pseudo_labels.{name}"),
    "segment.format": ("spino.export:LABEL_FORMATS", None),
    "panoptic.model.instance": ("spino.panoptic.instances:INSTANCE_METHODS", "panoptic.model.{name}"),
    "labelgen": ("spino.labelgen.labellers:LABELLERS", "{name}"),
    None: ("spino.labelgen.head_kinds:HEAD_KINDS", "{name}_head"),
}


@pytest.mark.parametrize("setting", list(REGISTRIES), ids=str)
def test_each_registry_states_its_choices_and_its_entries_settings_in_the_schema(setting: str | None) -> None:
    """The schema file states no extension's name nor settings: the registry's names are the choices of
    the setting that names one, and each entry's own settings class is its section, at the place the
    registry says (the file's sections are the pipeline's only)."""
    import spino.choices  # noqa: F401  (every registry the workflow plans with)
    from spino.config import raw_schema

    module, name = REGISTRIES[setting][0].split(":")
    registry = getattr(importlib.import_module(module), name)
    template = REGISTRIES[setting][1]
    if setting is not None:
        assert section_schema(setting, registries=True)["enum"] == list(registry)
        assert "enum" not in section_schema(setting)  # the file: a string, the names filled in
    owning = [n for n, entry in registry.items() if getattr(entry, "settings", None) is not None]
    assert bool(owning) == (template is not None)
    for entry_name in owning:
        path = template.format(name=entry_name)
        assert section_schema(path, registries=True)["properties"] == registry[entry_name].settings.schema["properties"]
        parent, _, key = path.rpartition(".")
        assert key not in (section_schema(parent) if parent else raw_schema())["properties"]


def test_a_plugins_settings_section_may_not_take_a_settings_place(monkeypatch) -> None:
    """A fusion named like a pseudo-label setting would put its section over that setting: refused,
    naming the plugin's entry, in one line."""
    from spino.labelgen.fusion import FUSIONS, NormalisedCuts

    monkeypatch.setattr(FUSIONS, "_entries", dict(FUSIONS._entries))
    FUSIONS.register("top2", NormalisedCuts)
    try:
        with pytest.raises(
            InputError,
            match=r"^fusion 'top2' \(spino\): its settings section pseudo_labels.top2 is a setting of spino's already$",
        ):
            check_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    finally:
        monkeypatch.undo()
        choices_changed()


def test_shard_sizes_are_one_number_or_one_per_store() -> None:
    assert [images_per_shard(128, store) for store in ("ground_truth", "pseudo_labels", "predictions")] == [128] * 3
    per_store = check_config({**TINY, "stores": {"images_per_shard": {"predictions": 512}}})
    sizes = per_store["stores"]["images_per_shard"]
    assert images_per_shard(sizes, "predictions") == 512
    assert images_per_shard(sizes, "pseudo_labels") == images_per_shard(sizes, "ground_truth") == 64  # the default
    with pytest.raises(ValueError, match="unknown store 'labels'"):
        images_per_shard(sizes, "labels")
    for wrong in (0, {}, {"labels": 8}, {"predictions": 0}):
        with pytest.raises(InputError, match="images_per_shard"):
            check_config({**TINY, "stores": {"images_per_shard": wrong}})
    # a setting of two forms: what is wrong with the form given, not "valid under none of the schemas"
    with pytest.raises(InputError) as typo:
        check_config({**TINY, "stores": {"images_per_shard": {"prediction": 512}}})
    assert str(typo.value) == (
        "stores.images_per_shard.prediction: unknown setting; stores.images_per_shard takes ground_truth, "
        "pseudo_labels, predictions"
    )
    with pytest.raises(InputError) as negative:
        check_config({**TINY, "pseudo_labels": {**TINY["pseudo_labels"], "min_pixels": {"car": -1}}})
    assert str(negative.value) == "pseudo_labels.min_pixels.car: -1 is less than the minimum of 0"
