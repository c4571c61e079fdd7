"""Pseudo-labels for one image: tiled multi-scale test-time augmentation of both heads, then fusion.

Scale s cuts the image into s x s tiles (spino.labelgen.tta; optionally overlapping and blended);
each tile is resized to the heads' input size, passed through the backbone once (shared by both
heads when they use the same backbone and input size), and each head's output is put back in the
tile's place. Semantic softmax and boundary probabilities are averaged over their scales. Each head
runs its MLP at its ``output_stride`` on the grid it was trained on (the semantic head: its input
size; the boundary head: ``upsample`` x the features) in row bands of bounded memory, and its logits
are resized bilinearly onto the tile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spino.backbone import Backbone, BackboneSpec
from spino.classes import ClassSet
from spino.config import load, owned_settings, section
from spino.encoding import semantic_of
from spino.errors import InputError
from spino.labelgen.embedding import EmbeddingClusterConfig, resize_embeddings, with_coordinates
from spino.labelgen.fusion import FUSIONS, fuse, min_pixels_per_class
from spino.labelgen.head_kinds import heads_trained
from spino.labelgen.labeller import Labeller, PseudoLabel
from spino.labelgen.mlp_head import MLPHead, head_grid
from spino.labelgen.ncut import NcutConfig
from spino.labelgen.train import load_head
from spino.labelgen.tta import Blend, tile_boxes
from spino.transforms import image_tensor


@section("pseudo_labels")
class PseudoLabelConfig:
    semantic_scales: tuple[int, ...]
    boundary_scales: tuple[int, ...]
    boundary_threshold: float
    min_pixels: int | Mapping[str, int]
    chunk_pixels: int
    tile_overlap: float  # fraction of a tile shared with its neighbour (PASTEL: 0.5); blended
    head_dtype: str  # float32 | bfloat16: the heads' MLP under autocast
    fusion: str  # a name of spino.labelgen.fusion.FUSIONS
    ncut: NcutConfig
    embedding: EmbeddingClusterConfig

    @classmethod
    def from_dict(cls, data: dict) -> PseudoLabelConfig:
        return load(cls, data)


class LabelGenerator(Labeller):
    """Both trained heads with their backbone(s); ``__call__`` labels one RGB image."""

    gives_runner_up = True

    def __init__(
        self,
        semantic_checkpoint: str | Path,
        boundary_checkpoint: str | Path,
        cfg: PseudoLabelConfig,
        device: str = "cpu",
        embedding_checkpoint: str | Path | None = None,
        fusion_settings: Mapping | None = None,
    ):
        super().__init__(device)
        self.cfg = cfg
        # a fusion's own settings (config pseudo_labels.<fusion>, e.g. a plugin's), its defaults filled in
        self.fusion_settings = owned_settings(f"pseudo_labels.{cfg.fusion}", fusion_settings or {})
        if ("embedding" in heads_trained(cfg.fusion)) != (embedding_checkpoint is not None):
            raise InputError("fusion: embedding needs an embedding head, and only it uses one")
        self.semantic_head, sem_meta = load_head(semantic_checkpoint, "semantic")
        self.boundary_head, bnd_meta = load_head(boundary_checkpoint, "boundary")
        self.class_set = ClassSet.from_dict(sem_meta["class_set"], source=str(semantic_checkpoint))
        self.semantic_backbone = Backbone(BackboneSpec.from_dict(sem_meta["backbone"]))
        shared = sem_meta["backbone"] == bnd_meta["backbone"]
        self.boundary_backbone = (
            self.semantic_backbone if shared else Backbone(BackboneSpec.from_dict(bnd_meta["backbone"]))
        )
        self.semantic_feed = tuple(sem_meta["input_size"])
        self.boundary_feed = tuple(bnd_meta["input_size"])
        self.shared_pass = shared and self.semantic_feed == self.boundary_feed
        self.upsample = int(bnd_meta["config"]["upsample"])
        self.semantic_stride = int(sem_meta["config"].get("output_stride", 1))
        self.boundary_stride = int(bnd_meta["config"].get("output_stride", 1))
        self.head_autocast = torch.bfloat16 if cfg.head_dtype == "bfloat16" else None
        for module in (self.semantic_head, self.boundary_head, self.semantic_backbone, self.boundary_backbone):
            module.to(self.device)
        self.min_pixels = min_pixels_per_class(cfg.min_pixels, self.class_set)
        self.embedding_head = None
        if embedding_checkpoint is not None:
            self.embedding_head, emb_meta = load_head(embedding_checkpoint, "embedding")
            self.embedding_head.to(self.device)
            self.embedding_backbone = self.semantic_backbone
            if emb_meta["backbone"] != sem_meta["backbone"]:
                self.embedding_backbone = Backbone(BackboneSpec.from_dict(emb_meta["backbone"])).to(self.device)
            self.embedding_feed = tuple(emb_meta["input_size"])
            self.embedding_upsample = int(emb_meta["config"]["upsample"])
            self.embedding_stride = int(emb_meta["config"].get("output_stride", 1))
            self.embedding_span = float(emb_meta["config"].get("coordinates", 0.0))

    def embeddings(self, image: torch.Tensor) -> torch.Tensor:
        """(D, h, w) embeddings of the whole image (1, 3, H, W) at the embedding head's output size."""
        feats = self._features(self.embedding_backbone, image, self.embedding_feed)
        size = (feats.shape[-2] * self.embedding_upsample, feats.shape[-1] * self.embedding_upsample)
        return with_coordinates(
            self._head(self.embedding_head, feats, head_grid(size, self.embedding_stride), size), self.embedding_span
        )

    def _features(self, backbone: Backbone, tile: torch.Tensor, feed: tuple[int, int]) -> torch.Tensor:
        with self.timed("backbone"):
            resized = F.interpolate(tile, size=feed, mode="bilinear", align_corners=False)
            return backbone(resized)

    def _head(
        self, head: MLPHead, features: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
    ) -> torch.Tensor:
        """A head's logits at ``size``, its MLP run on ``grid`` (in bf16 under autocast if configured)."""
        with (
            self.timed("heads"),
            torch.autocast(self.device.type, self.head_autocast, enabled=self.head_autocast is not None),
        ):
            return head.predict(features, size, self.cfg.chunk_pixels, grid).float()

    @torch.no_grad()
    def __call__(self, image: np.ndarray, runner_up: bool = False) -> PseudoLabel:
        height, width = image.shape[:2]
        img = image_tensor(image, device=self.device)[None]
        sem_scales, bnd_scales = set(self.cfg.semantic_scales), set(self.cfg.boundary_scales)
        probs = torch.zeros((self.class_set.num_classes, height, width), device=self.device)
        boundary = torch.zeros((height, width), device=self.device)
        semantic_grid = head_grid(self.semantic_feed, self.semantic_stride)
        for scale in sorted(sem_scales | bnd_scales):
            sem_blend = Blend(probs, scale, self.cfg.tile_overlap) if scale in sem_scales else None
            bnd_blend = Blend(boundary, scale, self.cfg.tile_overlap) if scale in bnd_scales else None
            for box in tile_boxes(height, width, scale, self.cfg.tile_overlap):
                y0, y1, x0, x1 = box
                tile = img[..., y0:y1, x0:x1]
                feats = None
                if sem_blend is not None:
                    feats = self._features(self.semantic_backbone, tile, self.semantic_feed)
                    logits = self._head(self.semantic_head, feats, semantic_grid, (y1 - y0, x1 - x0))
                    with self.timed("heads"):
                        sem_blend.add(box, logits.softmax(0))
                if bnd_blend is not None:
                    if feats is None or not self.shared_pass:
                        feats = self._features(self.boundary_backbone, tile, self.boundary_feed)
                    size = (feats.shape[-2] * self.upsample, feats.shape[-1] * self.upsample)
                    logits = self._head(self.boundary_head, feats, head_grid(size, self.boundary_stride), size)
                    with self.timed("heads"):
                        p = F.interpolate(
                            logits.sigmoid()[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
                        )
                        bnd_blend.add(box, p[0, 0])
            with self.timed("heads"):
                for blend in (sem_blend, bnd_blend):
                    if blend is not None:
                        blend.finish()
        with self.timed("heads"):
            probs /= len(sem_scales)
            confidence, semantic = probs.max(0)
            second = probs.scatter(0, semantic[None], -1.0).max(0) if runner_up else None
            inside = (boundary / len(bnd_scales)).cpu().numpy()  # probability of interior
            interior = inside > self.cfg.boundary_threshold
            semantic = semantic.to(torch.uint8).cpu().numpy()
            confidence = confidence.to(torch.float16).cpu().numpy()
            runner_up_classes = second.indices.to(torch.uint8).cpu().numpy() if second is not None else None
            runner_up_confidence = second.values.to(torch.float16).cpu().numpy() if second is not None else None
        embeddings = self.embeddings(img) if self.embedding_head is not None else None
        with self.timed("fusion"):
            available = {
                "boundary": lambda: 1.0 - inside,
                "ncut": lambda: self.cfg.ncut,
                "settings": lambda: self.fusion_settings,
                "embeddings": lambda: (resize_embeddings(embeddings, (height, width)), self.cfg.embedding),
            }
            inputs = {name: available[name]() for name in FUSIONS[self.cfg.fusion].inputs}
            panoptic = fuse(semantic, interior, self.class_set, self.min_pixels, self.cfg.fusion, **inputs)
        kept = None if embeddings is None else embeddings.to(torch.float16).cpu().numpy()
        return PseudoLabel(
            semantic_of(panoptic), panoptic, confidence, interior, kept, runner_up_classes, runner_up_confidence
        )
