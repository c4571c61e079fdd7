"""Panoptic predictions: one image through the model and post-processing; a shard into a store."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spino.classes import ClassSet
from spino.data.io import read_image
from spino.encoding import PANOPTIC_DTYPE, semantic_of
from spino.panoptic.model import PanopticModel
from spino.panoptic.postprocess import PostprocessConfig, panoptic_from_outputs
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

    As detectron2's Panoptic-DeepLab: semantic logits, centre heatmap and offsets (scaled to the new
    pixel size) are resized bilinearly to ``size`` first, and centres and grouping are found there,
    so boundaries and small instances keep the output resolution. With ``cfg.flip`` the mirrored
    image's outputs are mirrored back and averaged in (class probabilities, heatmaps, and offsets
    with their x component negated).
    """
    semantic, center, offset = model_outputs(model, image)
    if cfg.flip:
        mirrored = model_outputs(model, image.flip(-1))
        semantic = torch.log((semantic.softmax(1) + mirrored[0].flip(-1).softmax(1)) / 2)
        center = (center + mirrored[1].flip(-1)) / 2
        offset = (offset + mirrored[2].flip(-1) * torch.tensor([1.0, -1.0], device=offset.device).view(1, 2, 1, 1)) / 2
    if size is not None and tuple(size) != tuple(semantic.shape[-2:]):
        scale = torch.tensor([size[0] / offset.shape[-2], size[1] / offset.shape[-1]], device=offset.device).view(
            1, 2, 1, 1
        )
        semantic, center, offset = (
            F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False) for t in (semantic, center, offset)
        )
        offset = offset * scale
    pan = panoptic_from_outputs(semantic[0], center[0], offset[0], class_set, cfg)
    return pan.cpu().numpy().astype(PANOPTIC_DTYPE)


def model_outputs(model: PanopticModel, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Semantic logits, centre heatmap and offsets of one image (3, h, w), each (1, C, h, w) float32."""
    out = model(image[None])
    return out["semantic"].float(), out["center"].float(), out["offset"].float()


def write_prediction_shard(
    store: LabelStore, model: PanopticModel, class_set: ClassSet, cfg: PostprocessConfig, index: int
) -> int:
    """Predict the images of one shard (fed at the model's input size, post-processed at the store's)."""
    device = next(model.parameters()).device
    shard = store.shard(index)
    paths = store.meta["image_paths"]
    maps = []
    for i in progress(range(shard.start, shard.stop), f"predict shard {index}"):
        image = read_image(paths[i])
        store.check_size(image.shape, paths[i])
        img = image_tensor(image, model.cfg.input_size, device)
        maps.append(predict_panoptic(model, img, class_set, cfg, (store.height, store.width)))
    panoptic = np.stack(maps)
    store.write_shard(index, semantic_of(panoptic), panoptic)
    return len(maps)
