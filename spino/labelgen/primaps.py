"""Label-free semantic pseudo-labels from principal mask proposals (PriMaPs, Hahn et al., TMLR 2024).

An image's frozen features are decomposed into masks: the first principal direction of the patch
features not yet covered, oriented towards them; the uncovered patches whose cosine similarity to
it reaches ``threshold`` x its maximum form a mask; repeated until ``coverage`` of the patches are
covered (the rest stay void). Each mask is described by the mean of its L2-normalised features. K
class prototypes are fitted to the mask descriptors of the dataset by a stochastic EM: seeded
k-means++ start, then in shuffled batches of images every mask goes to its most similar prototype
and each prototype moves towards the mean of its masks by an exponential moving average (decay
``ema``). A pixel's pseudo-label is its mask's prototype: cluster ids, not class ids, until a
Hungarian matching to the classes (``spino evaluate --matching hungarian``). The CRF refinement of
the original is not applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spino.backbone import Backbone, BackboneSpec
from spino.checkpoint import load_checkpoint, register_checkpoint_kind, save_checkpoint
from spino.classes import IGNORE, ClassSet
from spino.config import load
from spino.data.io import read_image
from spino.encoding import encode
from spino.errors import InputError
from spino.labelgen.labeller import Labeller, PseudoLabel
from spino.labelgen.labellers import PrimapsConfig
from spino.progress import progress
from spino.transforms import image_tensor

register_checkpoint_kind("primaps", "PriMaPs class prototypes")


def principal_masks(features: torch.Tensor, threshold: float, coverage: float, max_masks: int) -> torch.Tensor:
    """(h, w) int64 mask index per patch of (C, h, w) features, -1 where no mask covers it."""
    c, h, w = features.shape
    x = F.normalize(features.reshape(c, -1).T.float(), dim=1)
    mask = torch.full((h * w,), -1, dtype=torch.int64)
    for index in range(max_masks):
        left = (mask < 0).nonzero()[:, 0]
        if len(left) <= (1 - coverage) * h * w:
            break
        remaining = x[left]
        centred = remaining - remaining.mean(0)
        direction = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -1]  # first principal direction
        similarity = remaining @ direction
        if similarity.abs().max() > similarity.max():  # orient it towards the features it describes
            similarity = -similarity
        chosen = similarity >= threshold * similarity.max()
        mask[left[chosen]] = index
    return mask.reshape(h, w)


def mask_descriptors(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(M, C) L2-normalised mean of the normalised features of each of the M masks."""
    c = features.shape[0]
    x = F.normalize(features.reshape(c, -1).T.float(), dim=1)
    flat = masks.reshape(-1)
    count = int(flat.max()) + 1
    sums = torch.zeros(count, c).index_add_(0, flat.clamp(min=0), x * (flat >= 0)[:, None].float())
    return F.normalize(sums, dim=1)


def kmeans_pp(descriptors: torch.Tensor, k: int, rng: np.random.Generator) -> torch.Tensor:
    """k starting prototypes by k-means++ seeding on cosine distance."""
    if len(descriptors) < k:
        raise InputError(f"{len(descriptors)} masks in the fitting images, fewer than the {k} classes to fit")
    chosen = [int(rng.integers(len(descriptors)))]
    for _ in range(1, k):
        distance = (1 - descriptors @ descriptors[chosen].T).min(dim=1).values.clamp(min=0).double().numpy()
        total = distance.sum()
        chosen.append(
            int(rng.choice(len(descriptors), p=distance / total)) if total > 0 else int(rng.integers(len(descriptors)))
        )
    return descriptors[chosen].clone()


def fit_prototypes(per_image: list[torch.Tensor], k: int, cfg: PrimapsConfig) -> torch.Tensor:
    """(k, C) prototypes fitted to the mask descriptors of each image by the EMA-updated stochastic EM."""
    rng = np.random.default_rng(cfg.seed)
    prototypes = kmeans_pp(torch.cat(per_image), k, rng)
    for _ in range(cfg.epochs):
        order = rng.permutation(len(per_image))
        for start in range(0, len(order), cfg.batch_images):
            batch = torch.cat([per_image[i] for i in order[start : start + cfg.batch_images]])
            assign = (batch @ prototypes.T).argmax(1)
            for j in assign.unique().tolist():
                mean = F.normalize(batch[assign == j].mean(0), dim=0)
                prototypes[j] = F.normalize(cfg.ema * prototypes[j] + (1 - cfg.ema) * mean, dim=0)
    return prototypes


class PrimapsLabeller(Labeller):
    """The backbone and the fitted prototypes; ``__call__`` labels one RGB image by cluster."""

    def __init__(
        self, backbone: Backbone, prototypes: torch.Tensor, cfg: PrimapsConfig, class_set: ClassSet, device: str = "cpu"
    ):
        super().__init__(device)
        self.backbone, self.prototypes = backbone.to(self.device), prototypes.to(self.device)
        self.cfg, self.class_set = cfg, class_set
        self.feed = backbone.round_size(*cfg.input_size)

    @classmethod
    def open(cls, inputs, settings, device) -> PrimapsLabeller:
        """From the prototypes (input ``primaps``), which carry the settings they were fitted with."""
        return load_primaps(inputs["primaps"], device)

    @torch.no_grad()
    def masks(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The image's features (C, h, w) and their principal masks (h, w), on the CPU."""
        with self.timed("backbone"):
            features = self.backbone(image_tensor(image, self.feed, self.device)[None])[0].float().cpu()
        with self.timed("masks"):
            return features, principal_masks(features, self.cfg.threshold, self.cfg.coverage, self.cfg.max_masks)

    def __call__(self, image: np.ndarray, runner_up: bool = False) -> PseudoLabel:
        """Cluster id per pixel (255 where no mask covers it); confidence: its mask's similarity to the
        prototype. No runner-up: clusters have no class probabilities (a top-2 store is refused before)."""
        features, masks = self.masks(image)
        with self.timed("prototypes"):
            score, cluster = (mask_descriptors(features, masks) @ self.prototypes.cpu().T).max(1)
            covered = masks >= 0
            patch_label = torch.where(covered, cluster[masks.clamp(min=0)], IGNORE).float()
            patch_score = torch.where(covered, score[masks.clamp(min=0)], 0.0)
            size = image.shape[:2]
            label = F.interpolate(patch_label[None, None], size=size, mode="nearest")[0, 0].to(torch.uint8).numpy()
            confidence = (
                F.interpolate(patch_score[None, None], size=size, mode="nearest")[0, 0].to(torch.float16).numpy()
            )
        return PseudoLabel(label, encode(label, np.zeros(label.shape, np.uint16)), confidence)


def fit_primaps(
    cfg: PrimapsConfig,
    spec: BackboneSpec,
    image_paths: list[str],
    class_set: ClassSet,
    out: str | Path,
    device: str = "cpu",
) -> None:
    """Fit one prototype per class of ``class_set`` to the masks of the images; write them as a checkpoint."""
    if not image_paths:
        raise InputError(f"no images in the PriMaPs fitting splits {list(cfg.fit_splits)}")
    torch.manual_seed(cfg.seed)
    labeller = PrimapsLabeller(Backbone(spec), torch.empty(0), cfg, class_set, device)
    per_image = []
    for path in progress(image_paths, "principal masks"):
        features, masks = labeller.masks(read_image(path))
        per_image.append(mask_descriptors(features, masks))
    prototypes = fit_prototypes(per_image, class_set.num_classes, cfg)
    payload = {
        "prototypes": prototypes,
        "config": {**cfg.__dict__, "input_size": list(cfg.input_size), "fit_splits": list(cfg.fit_splits)},
        "backbone": spec.to_dict(),
        "class_set": class_set.to_dict(),
        "masks_fitted": int(sum(len(d) for d in per_image)),
    }
    save_checkpoint(out, "primaps", payload)


def load_primaps(path: str | Path, device: str = "cpu") -> PrimapsLabeller:
    """The labeller of a prototype checkpoint written by ``fit_primaps``."""
    meta = load_checkpoint(path, "primaps")
    class_set = ClassSet.from_dict(meta["class_set"], source=str(path))
    backbone = Backbone(BackboneSpec.from_dict(meta["backbone"]))
    return PrimapsLabeller(
        backbone, meta["prototypes"], load(PrimapsConfig, meta["config"], "primaps"), class_set, device
    )
