"""The trained panoptic model's checkpoint: what ``spino predict`` (and any user) loads."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from spino.checkpoint import load_checkpoint, register_checkpoint_kind, save_checkpoint
from spino.classes import ClassSet
from spino.config import load
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.postprocess import PostprocessConfig

register_checkpoint_kind("panoptic", "a panoptic model")


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
