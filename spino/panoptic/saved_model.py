"""The trained panoptic model's checkpoint: what ``spino predict`` (and any user) loads."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from spino.checkpoint import load_checkpoint, register_checkpoint_kind, save_checkpoint
from spino.classes import ClassSet
from spino.config import MOVED, load
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.postprocess import PostprocessConfig

# Settings of format 1 files that moved from the post-processing into the centre/offset method's own
# section: the config's table of moved settings says which.
CENTER_OFFSET_POSTPROCESS = tuple(
    old.removeprefix("panoptic.train.postprocess.")
    for old, new in MOVED.items()
    if old.startswith("panoptic.train.postprocess.") and new.startswith("panoptic.model.center_offset.")
)


def settings_of_format_1(model_config: dict, postprocess: dict) -> tuple[dict, dict]:
    """A format-1 model's settings (before each instance method held its own) in today's layout: the
    centre grouping's settings move from the post-processing into ``center_offset``; the training
    settings that moved with them (sigma, loss weights) were never in a model file and take the
    schema's defaults. Also used for the metadata of safetensors and ONNX files."""
    moved = {k: postprocess[k] for k in CENTER_OFFSET_POSTPROCESS if k in postprocess}
    model_config = {**model_config, "center_offset": {**model_config.get("center_offset", {}), **moved}}
    return model_config, {k: v for k, v in postprocess.items() if k not in CENTER_OFFSET_POSTPROCESS}


def _format_1_to_2(state: dict) -> dict:
    model_config, postprocess = settings_of_format_1(state["model_config"], state["postprocess"])
    return {**state, "model_config": model_config, "postprocess": postprocess}


register_checkpoint_kind("panoptic", "a panoptic model", upgrades={1: _format_1_to_2})


def save_model(
    path: str | Path, model: PanopticModel, model_cfg: ModelConfig, class_set: ClassSet, postprocess: PostprocessConfig
) -> None:
    """The trained model as one checkpoint: its trainable weights, settings, classes and post-processing."""
    payload = {
        "model": model.trainable_state(),
        "model_config": model_cfg.to_dict(),
        "class_set": class_set.to_dict(),
        "postprocess": asdict(postprocess),
    }
    save_checkpoint(path, "panoptic", payload)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[PanopticModel, ClassSet, PostprocessConfig]:
    """A trained panoptic model from its checkpoint (weights_only: no arbitrary unpickling)."""
    state = load_checkpoint(path, "panoptic")
    cfg = state["model_config"]
    model_cfg = ModelConfig.from_dict(cfg, cfg["backbone"])
    class_set = ClassSet.from_dict(state["class_set"], source=str(path))
    model = PanopticModel(model_cfg, class_set.num_classes)
    model.load_trainable_state(state["model"])
    return model.to(device).eval(), class_set, load(PostprocessConfig, state["postprocess"])
