"""Panoptic predictions: one image through the model and post-processing; a shard into a store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from spino.classes import ClassSet
from spino.data.io import read_image
from spino.encoding import PANOPTIC_DTYPE, semantic_of
from spino.metrics import PanopticStats
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.model import PanopticModel
from spino.panoptic.postprocess import PostprocessConfig
from spino.progress import progress
from spino.store import LabelStore
from spino.transforms import image_tensor


@torch.no_grad()
def predict_panoptic(
    model: PanopticModel,
    image: torch.Tensor,
    class_set: ClassSet,
    cfg: PostprocessConfig,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Panoptic map (spino encoding) of one image (3, h, w), float 0..255, at ``size`` (default: h, w).

    The model's instance method post-processes its outputs with the semantic logits at ``size``.
    """
    method = model.instance_method
    outputs = batch_outputs(model, image[None], method, cfg.flip)
    size = tuple(size) if size is not None else tuple(outputs["semantic"].shape[-2:])
    pan = method.panoptic(outputs["semantic"], outputs, class_set, cfg, size)
    return pan.cpu().numpy().astype(PANOPTIC_DTYPE)


@torch.no_grad()
def batch_outputs(
    network: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    images: torch.Tensor,
    method: InstanceMethod,
    flip: bool,
) -> dict[str, torch.Tensor]:
    """The outputs of ``network`` (the model, or its exported form) for a batch (B, 3, h, w), in
    float32. With ``flip`` the mirrored images' outputs are mirrored back and averaged in: class
    probabilities here, the instance outputs by the method."""
    outputs = {name: value.float() for name, value in network(images).items()}
    if flip:
        mirrored = {name: value.float() for name, value in network(images.flip(-1)).items()}
        semantic = torch.log((outputs["semantic"].softmax(1) + mirrored["semantic"].flip(-1).softmax(1)) / 2)
        outputs = {**method.flip_average(outputs, mirrored), "semantic": semantic}
    return outputs


@torch.no_grad()
def prediction_stats(
    model: PanopticModel, items: Iterable[tuple[str | Path, np.ndarray]], class_set: ClassSet, cfg: PostprocessConfig
) -> PanopticStats:
    """PQ/mIoU sums of the model's predictions (fed at its input size, post-processed at the label's
    size, as ``spino predict``) against each (image path, ground-truth panoptic map)."""
    device = next(model.parameters()).device
    stats = PanopticStats(class_set.num_classes)
    for path, label in items:
        image = image_tensor(read_image(path), model.cfg.input_size, device)
        stats.update(label, predict_panoptic(model, image, class_set, cfg, label.shape), class_set)
    return stats


def write_prediction_shard(
    store: LabelStore, model: PanopticModel, class_set: ClassSet, cfg: PostprocessConfig, index: int
) -> int:
    """Predict the images of one shard (fed at the model's input size, post-processed at the store's)."""
    device = next(model.parameters()).device
    shard = store.shard(index)
    paths = store.meta["image_paths"]
    maps = []
    for i in progress(range(shard.start, shard.stop), f"predict shard {index}"):
        image = store.read_image(paths[i])
        img = image_tensor(image, model.cfg.input_size, device)
        maps.append(predict_panoptic(model, img, class_set, cfg, (store.height, store.width)))
    panoptic = np.stack(maps)
    store.write_shard(index, semantic_of(panoptic), panoptic)
    return len(maps)
