"""Panoptic predictions: one image through the model and post-processing; a shard into a store."""

from __future__ import annotations

import numpy as np
import torch

from spino.classes import ClassSet
from spino.data.io import read_image
from spino.encoding import PANOPTIC_DTYPE, semantic_of
from spino.panoptic.model import PanopticModel
from spino.panoptic.postprocess import PostprocessConfig, panoptic_from_outputs
from spino.progress import progress
from spino.store import LabelStore
from spino.transforms import image_tensor, resize_nearest


@torch.no_grad()
def predict_panoptic(model: PanopticModel, image: torch.Tensor, class_set: ClassSet, cfg: PostprocessConfig) -> np.ndarray:
    """Panoptic map (spino encoding) of one image (3, H, W), float 0..255, at that size."""
    out = model(image[None])
    pan = panoptic_from_outputs(out["semantic"][0].float(), out["center"][0].float(), out["offset"][0].float(), class_set, cfg)
    return pan.cpu().numpy().astype(PANOPTIC_DTYPE)


def write_prediction_shard(store: LabelStore, model: PanopticModel, class_set: ClassSet, cfg: PostprocessConfig, index: int) -> int:
    """Predict the images of one shard at the model's input size; labels are resized back (nearest)."""
    device = next(model.parameters()).device
    shard = store.shard(index)
    paths = store.meta["image_paths"]
    maps = []
    for i in progress(range(shard.start, shard.stop), f"predict shard {index}"):
        image = read_image(paths[i])
        store.check_size(image.shape, paths[i])
        img = image_tensor(image, model.cfg.input_size, device)
        maps.append(resize_nearest(predict_panoptic(model, img, class_set, cfg), (store.height, store.width)))
    panoptic = np.stack(maps)
    store.write_shard(index, semantic_of(panoptic), panoptic)
    return len(maps)
