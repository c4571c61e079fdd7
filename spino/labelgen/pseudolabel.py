"""Pseudo-labels for one image: tiled multi-scale test-time augmentation of both heads, then fusion.

Scale s cuts the image into s x s tiles (spino.labelgen.tta; optionally overlapping and blended);
each tile is resized to the heads' input size, passed through the backbone once (shared by both
heads when they use the same backbone and input size), and each head's output is put back in the
tile's place. Semantic softmax and boundary probabilities are averaged over their scales. Each head
runs its MLP at its ``output_stride`` on the grid it was trained on (the semantic head: its input
size; the boundary head: ``upsample`` x the features) in row bands of bounded memory, and its logits
are resized bilinearly onto the tile. The other heads the fusion needs (the embedding head for
``fusion: embedding``, a plugin's) run once on the whole image, their outputs resized to it and
given to the fusion under their kind's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spino.backbone import Backbone, BackboneSpec
from spino.classes import ClassSet
from spino.config import load, section
from spino.devices import inference_dtype
from spino.encoding import semantic_of
from spino.errors import InputError
from spino.labelgen.fusion import FUSIONS, fuse, min_pixels_per_class
from spino.labelgen.head_kinds import HEAD_KINDS, head_settings, heads_trained
from spino.labelgen.labeller import Labeller, PseudoLabel
from spino.labelgen.mlp_head import MLPHead, head_grid
from spino.labelgen.train import load_head
from spino.labelgen.tta import Blend, Box, tile_boxes
from spino.transforms import image_tensor


@section("pseudo_labels")
class PseudoLabelConfig:
    semantic_scales: tuple[int, ...]
    boundary_scales: tuple[int, ...]
    boundary_threshold: float
    min_pixels: int | Mapping[str, int]
    chunk_pixels: int
    tile_overlap: float  # fraction of a tile shared with its neighbour (PASTEL: 0.5); blended
    tile_batch: int  # tiles through the backbone at once (any scales: all are resized to the input size)
    head_dtype: str  # auto | float32 | bfloat16: the heads' MLP under autocast (spino.devices.inference_dtype)
    fusion: str  # a name of spino.labelgen.fusion.FUSIONS (its own settings: pseudo_labels.<fusion>)

    @classmethod
    def from_dict(cls, data: dict) -> PseudoLabelConfig:
        return load(cls, data)


@dataclass(frozen=True)
class TilePass:
    """One tile through the backbone: the heads that read its features."""

    scale: int
    box: Box
    heads: tuple[str, ...]


@dataclass
class Predicted:
    """What the heads made of one image, on the CPU: what the fusion turns into its pseudo-label."""

    semantic: np.ndarray  # uint8 classes
    confidence: np.ndarray  # float16
    inside: np.ndarray  # float32, the mean boundary head's probability of interior
    interior: np.ndarray  # bool, inside > boundary_threshold
    head_outputs: dict[str, np.ndarray]  # the other heads the fusion reads, at the image's size
    embeddings: np.ndarray | None  # the embedding head's at its size, float16 (SPOCO's files)
    runner_up: np.ndarray | None
    runner_up_confidence: np.ndarray | None


class WholeImageHead:
    """A head the fusion reads beside the semantic and boundary heads (the embedding head, a plugin's):
    run once on the whole image at its input size, its output (its kind's ``labelling_output``) at
    ``upsample`` x the features, or the size its kind says."""

    def __init__(self, kind: str, checkpoint: str | Path, class_set: ClassSet):
        self.head, meta = load_head(checkpoint, kind)
        settings = head_settings(kind, {k: v for k, v in meta["config"].items() if k != "kind"})
        self.kind = HEAD_KINDS[kind].load()(settings, class_set)
        self.backbone_spec = meta["backbone"]
        self.feed = tuple(meta["input_size"])
        self.stride = settings.output_stride


class LabelGenerator(Labeller):
    """Both trained heads with their backbone(s), and the other heads the fusion needs; ``__call__``
    labels one RGB image."""

    gives_runner_up = True

    def __init__(
        self,
        semantic_checkpoint: str | Path,
        boundary_checkpoint: str | Path,
        cfg: PseudoLabelConfig,
        device: str = "cpu",
        heads: Mapping[str, str | Path] | None = None,
        fusion_settings: Mapping | None = None,
    ):
        super().__init__(device)
        self.cfg = cfg
        heads = dict(heads or {})
        needed = [k for k in heads_trained(cfg.fusion) if k not in ("semantic", "boundary")]
        if sorted(heads) != sorted(needed):
            raise InputError(
                f"fusion {cfg.fusion!r} labels with the heads semantic, boundary{''.join(', ' + k for k in needed)}; "
                f"given semantic, boundary{''.join(', ' + k for k in heads)}"
            )
        # the fusion's own settings (config pseudo_labels.<fusion>), validated, its defaults filled in
        own = FUSIONS[cfg.fusion].settings
        self.fusion_settings = load(own, dict(fusion_settings or {}), f"pseudo_labels.{cfg.fusion}") if own else None
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
        self.head_autocast = inference_dtype(cfg.head_dtype, self.device)
        for module in (self.semantic_head, self.boundary_head, self.semantic_backbone, self.boundary_backbone):
            module.to(self.device)
        self.min_pixels = min_pixels_per_class(cfg.min_pixels, self.class_set)
        self.heads = {kind: WholeImageHead(kind, path, self.class_set) for kind, path in heads.items()}
        self.backbones = {}  # of the whole-image heads, by spec: the semantic head's reused where they agree
        for extra in self.heads.values():
            extra.head.to(self.device)
            if extra.backbone_spec == sem_meta["backbone"]:
                extra.backbone = self.semantic_backbone
            else:
                extra.backbone = Backbone(BackboneSpec.from_dict(extra.backbone_spec)).to(self.device)

    @classmethod
    def open(cls, inputs, settings, device) -> LabelGenerator:
        """From the inputs ``<kind>_head`` (semantic and boundary, and the fusion's) and config ``pseudo_labels``."""
        heads = {name.removesuffix("_head"): path for name, path in inputs.items() if name.endswith("_head")}
        wrong = [name for name in inputs if not name.endswith("_head")]
        wrong += [f"{kind}_head missing" for kind in ("semantic", "boundary") if kind not in heads]
        if wrong:
            raise InputError(
                f"labeller spino labels from the inputs <kind>_head, semantic and boundary at least: {', '.join(wrong)}"
            )
        cfg = PseudoLabelConfig.from_dict(settings)
        return cls(heads.pop("semantic"), heads.pop("boundary"), cfg, device, heads, settings.get(cfg.fusion))

    def head_output(self, kind: str, image: torch.Tensor) -> torch.Tensor:
        """A whole-image head's output for the image (1, 3, H, W) at its own output size."""
        extra = self.heads[kind]
        feats = self._features(extra.backbone, [image], extra.feed)
        size = extra.kind.output_size(extra.backbone, extra.feed)
        return extra.kind.labelling_output(self._head(extra.head, feats, head_grid(size, extra.stride), size))

    def _features(self, backbone: Backbone, tiles: list[torch.Tensor], feed: tuple[int, int]) -> torch.Tensor:
        """The backbone's features (B, C, h, w) of tiles (1, 3, H_i, W_i) resized to ``feed``, in one batch."""
        with self.timed("backbone"):
            resized = [F.interpolate(tile, size=feed, mode="bilinear", align_corners=False) for tile in tiles]
            return backbone(torch.cat(resized))

    def _head(
        self, head: MLPHead, features: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
    ) -> torch.Tensor:
        """A head's logits at ``size``, its MLP run on ``grid`` (in bf16 under autocast if configured)."""
        with (
            self.timed("heads"),
            torch.autocast(self.device.type, self.head_autocast, enabled=self.head_autocast is not None),
        ):
            return head.predict(features, size, self.cfg.chunk_pixels, grid).float()

    def __call__(self, image: np.ndarray, runner_up: bool = False) -> PseudoLabel:
        return self.finish(self.predict(image, runner_up))

    def tile_passes(self, height: int, width: int) -> list[TilePass]:
        """The backbone passes of an image of this size, scale by scale, tile by tile: one per tile with
        the heads sharing a pass, else one per head."""
        cfg = self.cfg
        sem_scales, bnd_scales = set(cfg.semantic_scales), set(cfg.boundary_scales)
        passes = []
        for scale in sorted(sem_scales | bnd_scales):
            heads = [head for head, scales in (("semantic", sem_scales), ("boundary", bnd_scales)) if scale in scales]
            groups = [tuple(heads)] if self.shared_pass else [(head,) for head in heads]
            for box in tile_boxes(height, width, scale, cfg.tile_overlap):
                passes += [TilePass(scale, box, group) for group in groups]
        return passes

    @torch.no_grad()
    def predict(self, image: np.ndarray, runner_up: bool = False) -> Predicted:
        """The heads' maps of one image (the device's work), on the CPU for ``finish``.

        Tiles of every scale are resized to the heads' input size, so any of them batch together:
        ``tile_batch`` of them go through the backbone at once (each head's tiles in their order, so
        every pixel's sum over tiles is added in the order of an unbatched run)."""
        height, width = image.shape[:2]
        img = image_tensor(image, device=self.device)[None]
        sem_scales, bnd_scales = set(self.cfg.semantic_scales), set(self.cfg.boundary_scales)
        probs = torch.zeros((self.class_set.num_classes, height, width), device=self.device)
        boundary = torch.zeros((height, width), device=self.device)
        semantic_grid = head_grid(self.semantic_feed, self.semantic_stride)
        passes = self.tile_passes(height, width)
        blends = {
            (head, scale): Blend(total, scale, self.cfg.tile_overlap)
            for head, total, scales in (("semantic", probs, sem_scales), ("boundary", boundary, bnd_scales))
            for scale in scales
        }
        feeds = {"semantic": (self.semantic_backbone, self.semantic_feed)}  # each head's backbone and input size
        feeds["boundary"] = feeds["semantic"] if self.shared_pass else (self.boundary_backbone, self.boundary_feed)
        groups: dict[tuple[Backbone, tuple[int, int]], list[TilePass]] = {}  # the passes that can share a call
        for tile_pass in passes:
            groups.setdefault(feeds[tile_pass.heads[0]], []).append(tile_pass)
        for (backbone, feed), group in groups.items():
            for start in range(0, len(group), self.cfg.tile_batch):
                batch = group[start : start + self.cfg.tile_batch]
                tiles = [img[..., y0:y1, x0:x1] for y0, y1, x0, x1 in (p.box for p in batch)]
                for tile_pass, feats in zip(batch, self._features(backbone, tiles, feed).split(1)):
                    y0, y1, x0, x1 = box = tile_pass.box
                    if "semantic" in tile_pass.heads:
                        logits = self._head(self.semantic_head, feats, semantic_grid, (y1 - y0, x1 - x0))
                        with self.timed("heads"):
                            blends["semantic", tile_pass.scale].add(box, logits.softmax(0))
                    if "boundary" in tile_pass.heads:
                        size = (feats.shape[-2] * self.upsample, feats.shape[-1] * self.upsample)
                        logits = self._head(self.boundary_head, feats, head_grid(size, self.boundary_stride), size)
                        with self.timed("heads"):
                            inside = F.interpolate(
                                logits.sigmoid()[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
                            )
                            blends["boundary", tile_pass.scale].add(box, inside[0, 0])
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
        outputs = {kind: self.head_output(kind, img) for kind in self.heads}
        with self.timed("heads"):
            wanted = FUSIONS[self.cfg.fusion].inputs
            resized = {kind: _resized(out, (height, width)) for kind, out in outputs.items() if kind in wanted}
            embeddings = outputs.get("embedding")
            kept = None if embeddings is None else embeddings.to(torch.float16).cpu().numpy()
        return Predicted(semantic, confidence, inside, interior, resized, kept, runner_up_classes, runner_up_confidence)

    def finish(self, predicted: Predicted) -> PseudoLabel:
        """The pseudo-label of the maps ``predict`` gave: the fusion (the CPU's work)."""
        p = predicted
        with self.timed("fusion"):
            available = {"boundary": lambda: 1.0 - p.inside, "settings": lambda: self.fusion_settings}
            inputs = {
                name: p.head_outputs[name] if name in p.head_outputs else available[name]()
                for name in FUSIONS[self.cfg.fusion].inputs
            }
            panoptic = fuse(p.semantic, p.interior, self.class_set, self.min_pixels, self.cfg.fusion, **inputs)
        return PseudoLabel(
            semantic_of(panoptic), panoptic, p.confidence, p.interior, p.embeddings, p.runner_up, p.runner_up_confidence
        )


def _resized(output: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A (C, h, w) head output bilinearly resized to ``size``, as float32 numpy."""
    return F.interpolate(output[None].float(), size=size, mode="bilinear", align_corners=False)[0].cpu().numpy()
