"""SOLOv2 instances (Wang et al., "SOLOv2: Dynamic and Fast Instance Segmentation", NeurIPS 2020),
in plain PyTorch, as "Location Based Efficient Panoptic Segmentation" puts them beside a semantic head.

Every cell of an S x S grid (one grid per level) predicts a category (sigmoid per class, focal
loss) and a 1x1 dynamic kernel; a mask is sigmoid(kernel * mask features), Dice loss on the cells
an instance is assigned to. The mask features are the instance decoder's stride-4 map (its
top-down fusion of strides 4-32 is the unified mask-feature branch) with two coordinate channels.
Inference: point NMS on the category maps, score threshold, masks at 0.5, scores rescored by
maskness, Matrix NMS (Gaussian), the top instances pasted by descending score onto the semantic
head's stuff (``fusion: paste``), or fused with the semantic logits as EfficientPS does
(``fusion: efficientps``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spino.classes import IGNORE, ClassSet
from spino.config import section
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, instance_of, semantic_of
from spino.errors import InputError
from spino.panoptic.instances.base import InstanceMethod
from spino.panoptic.layers import FloatOutput
from spino.panoptic.postprocess import drop_small_stuff
from spino.panoptic.targets import TargetConfig, semantic_targets

MASK_STRIDE = 4  # the mask features' stride (the instance decoder's output)


@section("panoptic.model.solov2")
class Solov2Config:
    grids: tuple[int, ...]  # S of each level (official: 40, 36, 24, 16, 12)
    strides: tuple[int, ...]  # the adapter stride each level's grid is resized from (official: 8, 8, 16, 32, 32)
    scale_ranges: tuple[tuple[float, float], ...]  # sqrt(instance area) / the input's shorter side, per level
    sigma: float  # an instance's centre region: this share of its box around the centre of mass (at most 3x3 cells)
    tower_convs: int  # conv layers of the category and kernel towers
    tower_channels: int
    mask_channels: int  # E: mask-feature channels, so the kernels' length
    max_instances: int  # instances per training image kept for the targets (the largest first)
    min_instance_area: int  # instances smaller than this (pixels at the input size) carry no loss
    focal_alpha: float
    focal_gamma: float
    mask_weight: float  # the Dice loss's weight in the total (official: 3)
    score_threshold: float  # inference: category scores kept after point NMS
    mask_threshold: float  # a mask pixel is in the instance above this probability
    pre_nms: int  # candidates into Matrix NMS
    nms_sigma: float  # Matrix NMS, Gaussian: decay exp(-sigma * iou^2)
    update_threshold: float  # scores after the decay kept above this
    max_detections: int  # instances per image after Matrix NMS
    fusion: str  # paste | efficientps: how instances and the semantic head make the panoptic map
    overlap_threshold: float  # paste: an instance mostly under higher-scored ones is dropped


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """Two channels of normalised pixel coordinates (-1..1, y then x) for a (B, C, h, w) map (CoordConv)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([ys, xs], 1)


def conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(math.gcd(32, cout), cout), nn.ReLU(inplace=True)
    )


def tower(cin: int, channels: int, convs: int, cout: int) -> FloatOutput:
    layers = [conv_gn_relu(cin if i == 0 else channels, channels) for i in range(convs)]
    return FloatOutput(*layers, nn.Conv2d(channels if convs else cin, cout, 3, padding=1))


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Sigmoid focal loss summed over cells and classes, normalised by the positive cells (+1).
    ``targets`` (N,) hold a class or -1 (background); ``weights`` (N,) are 0 where a cell carries no loss."""
    onehot = torch.zeros_like(logits)
    positive = targets >= 0
    onehot[positive.nonzero()[:, 0], targets[positive]] = 1.0
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    alpha_t = alpha * onehot + (1 - alpha) * (1 - onehot)
    loss = alpha_t * (1 - p_t) ** gamma * ce
    return (loss.sum(1) * weights).sum() / (positive.sum() + 1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over masks of 1 - 2 sum(p t) / (sum(p^2) + sum(t^2)), each sum over the pixels that carry
    loss (``weights``), with SOLO's 0.001 added to both squares."""
    p = logits.sigmoid().flatten(1) * weights.flatten(1)
    t = targets.float().flatten(1) * weights.flatten(1)
    a = (p * t).sum(1)
    b = (p * p).sum(1) + 0.001
    c = (t * t).sum(1) + 0.001
    return (1 - 2 * a / (b + c)).mean()


def matrix_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, sigma: float) -> torch.Tensor:
    """Matrix NMS, Gaussian (SOLOv2): the decayed scores of (n, h, w) binary masks sorted by descending
    score. Each mask's decay is the least, over higher-scored masks i of its class, of
    f(iou_ij) / f(max iou of i with any mask above i), f(x) = exp(-sigma x^2)."""
    n = len(masks)
    if n == 0:
        return scores
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    areas = flat.sum(1)
    iou = (inter / (areas[:, None] + areas[None, :] - inter).clamp(min=1e-6)).triu(diagonal=1)
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    decay_iou = iou * same
    compensate = decay_iou.max(0).values.expand(n, n).T
    decay = (torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * compensate**2)).min(0).values
    return scores * decay


class Solov2Heads(nn.Module):
    """Category and kernel towers shared over the levels, and the mask-feature projection."""

    def __init__(self, cfg: Solov2Config, in_channels: int, decoder_channels: int, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.category = tower(in_channels, cfg.tower_channels, cfg.tower_convs, num_classes)
        self.kernel = tower(in_channels + 2, cfg.tower_channels, cfg.tower_convs, cfg.mask_channels)
        self.mask_features = FloatOutput(
            conv_gn_relu(decoder_channels + 2, decoder_channels), nn.Conv2d(decoder_channels, cfg.mask_channels, 1)
        )
        nn.init.constant_(
            self.category[-1].bias, -math.log((1 - 0.01) / 0.01)
        )  # the usual prior of focal loss: 1 % foreground

    def forward(self, decoded: torch.Tensor, maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        categories, kernels = [], []
        for grid, stride in zip(self.cfg.grids, self.cfg.strides):
            x = maps[int(math.log2(stride)) - 2]  # the adapter's maps are at strides 4, 8, 16, 32
            x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
            categories.append(self.category(x).flatten(2).transpose(1, 2))  # (B, S*S, C)
            kernels.append(self.kernel(torch.cat([x, coordinates(x)], 1)).flatten(2).transpose(1, 2))  # (B, S*S, E)
        features = self.mask_features(torch.cat([decoded, coordinates(decoded)], 1))
        return {"category": torch.cat(categories, 1), "kernel": torch.cat(kernels, 1), "mask_features": features}


class Solov2(InstanceMethod):
    name = "solov2"
    loss_terms = ("category", "mask")

    @property
    def cfg(self) -> Solov2Config:
        return self.model_cfg.solov2

    def heads(self, num_classes: int) -> dict[str, nn.Module]:
        c = self.model_cfg
        if len(self.cfg.grids) != len(self.cfg.strides) or len(self.cfg.grids) != len(self.cfg.scale_ranges):
            raise InputError("panoptic.model.solov2: grids, strides and scale_ranges need one entry per level")
        return {"solov2_heads": Solov2Heads(self.cfg, c.channels, c.decoder_channels, num_classes)}

    def forward(self, heads, decoded, maps, size):
        return heads["solov2_heads"](decoded, maps)

    def targets(self, panoptic: np.ndarray, class_set: ClassSet, cfg: TargetConfig) -> dict[str, torch.Tensor]:
        return {**semantic_targets(panoptic, class_set, cfg), **solov2_targets(panoptic, class_set, self.cfg)}

    def losses(self, outputs, batch):
        category = outputs["category"].float()
        b, n, c = category.shape
        cat = focal_loss(
            category.reshape(b * n, c),
            batch["solo_category"].reshape(-1),
            batch["solo_category_weights"].reshape(-1),
            self.cfg.focal_alpha,
            self.cfg.focal_gamma,
        )
        kernels, features = outputs["kernel"].float(), outputs["mask_features"].float()
        logits, masks, weights = [], [], []
        for image in range(b):  # per image: gathers without repeated indices keep the backward pass deterministic
            cells = (batch["solo_instance"][image] >= 0).nonzero()[:, 0]
            if len(cells):
                logits.append(torch.einsum("pe,ehw->phw", kernels[image, cells], features[image]))
                masks.append(batch["solo_masks"][image, batch["solo_instance"][image, cells]])
                weights.append(batch["solo_mask_weights"][image].expand(len(cells), -1, -1))
        if not logits:  # no instance in the batch: a zero that keeps every head in the graph (DDP)
            return {"category": cat, "mask": 0.0 * kernels.sum() + 0.0 * features.sum()}
        return {"category": cat, "mask": dice_loss(torch.cat(logits), torch.cat(masks), torch.cat(weights))}

    def loss_weights(self, train_cfg) -> dict[str, float]:
        return {"category": 1.0, "mask": self.cfg.mask_weight}

    def flip_average(self, outputs, mirrored):
        """Category scores of mirrored cells averaged in (as logits of the mean probability); kernels
        and mask features stay the image's own (a mirrored kernel belongs to mirrored features)."""
        mean = (outputs["category"].sigmoid() + flip_cells(mirrored["category"], self.cfg.grids).sigmoid()) / 2
        return {**outputs, "category": torch.logit(mean, eps=1e-6)}

    def scored_panoptic(self, semantic, outputs, class_set, cfg, size):
        """Instances detected at ``size``, fused with the semantic logits there; each instance's score
        is its detection's (category score x maskness, after Matrix NMS)."""
        semantic = F.interpolate(semantic, size=tuple(size), mode="bilinear", align_corners=False)[0]
        instances = detect(outputs, class_set, self.cfg, tuple(size))
        if self.cfg.fusion == "efficientps":
            pan, scores = fuse_efficientps(semantic, instances, class_set)
        else:
            pan, scores = paste_instances(semantic, instances, class_set, self.cfg.overlap_threshold)
        return drop_small_stuff(pan, semantic.argmax(0), class_set, cfg.stuff_area), scores


def flip_cells(values: torch.Tensor, grids: tuple[int, ...]) -> torch.Tensor:
    """(B, N, C) per-cell values of a mirrored image, each level's grid mirrored back."""
    out, start = [], 0
    for s in grids:
        level = values[:, start : start + s * s].reshape(values.shape[0], s, s, -1)
        out.append(level.flip(2).reshape(values.shape[0], s * s, -1))
        start += s * s
    return torch.cat(out, 1)


def stride4_size(n: int) -> int:
    """The size of the adapter's stride-4 map along a side of n pixels (two stride-2 convs, padding 1)."""
    return math.ceil(math.ceil(n / 2) / 2)


def cell_centres(level: int, cfg: Solov2Config, shape: tuple[int, int]) -> np.ndarray:
    """Pixel (y, x) of each cell's centre of one level's grid, for an image of ``shape``."""
    s = cfg.grids[level]
    ys = (np.arange(s) + 0.5) * shape[0] / s
    xs = (np.arange(s) + 0.5) * shape[1] / s
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def solov2_targets(panoptic: np.ndarray, class_set: ClassSet, cfg: Solov2Config) -> dict[str, torch.Tensor]:
    """Per cell of every grid: the class of the instance it is assigned to (-1: background), whether it
    carries category loss (not on void or crowd), and which of the image's instance masks (at the
    mask stride) its mask is; and the weights of the mask pixels (0 on void and crowd)."""
    h, w = panoptic.shape
    semantic, instance = semantic_of(panoptic), instance_of(panoptic)
    thing = class_set.thing_mask()[np.where(semantic == IGNORE, 0, semantic)] & (semantic != IGNORE)
    no_loss = (panoptic == IGNORE_PANOPTIC) | (thing & (instance == 0))  # void, crowd
    hm, wm = stride4_size(h), stride4_size(w)
    n_cells = sum(s * s for s in cfg.grids)
    category = np.full(n_cells, -1, np.int64)
    weights = np.ones(n_cells, np.float32)
    which = np.full(n_cells, -1, np.int64)
    masks = np.zeros((cfg.max_instances, hm, wm), np.uint8)
    starts = np.cumsum([0, *[s * s for s in cfg.grids]])
    for level in range(len(cfg.grids)):  # cells centred on void or crowd carry no category loss
        centres = cell_centres(level, cfg, (h, w)).astype(np.int64)
        weights[starts[level] : starts[level + 1]] = ~no_loss[
            centres[:, 0].clip(0, h - 1), centres[:, 1].clip(0, w - 1)
        ]
    ids, areas = np.unique(np.where(thing & (instance > 0), panoptic, 0), return_counts=True)
    order = [k for k in np.argsort(-areas, kind="stable") if ids[k] != 0 and areas[k] >= cfg.min_instance_area]
    shorter = min(h, w)
    for slot, k in enumerate(order[: cfg.max_instances]):
        mask = panoptic == ids[k]
        masks[slot] = _downsampled(mask, (hm, wm))
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        half_h, half_w = 0.5 * (ys.max() - ys.min() + 1) * cfg.sigma, 0.5 * (xs.max() - xs.min() + 1) * cfg.sigma
        scale = math.sqrt(areas[k]) / shorter
        for level, (low, high) in enumerate(cfg.scale_ranges):
            if not low <= scale <= high:
                continue
            cells = _centre_region(cy, cx, half_h, half_w, cfg.grids[level], (h, w))
            category[starts[level] + cells] = ids[k] // LABEL_DIVISOR
            which[starts[level] + cells] = slot
            weights[starts[level] + cells] = 1.0
    mask_weights = _downsampled(~no_loss, (hm, wm)).astype(np.float32)
    return {
        "solo_category": torch.from_numpy(category),
        "solo_category_weights": torch.from_numpy(weights),
        "solo_instance": torch.from_numpy(which),
        "solo_masks": torch.from_numpy(masks),
        "solo_mask_weights": torch.from_numpy(mask_weights),
    }


def _downsampled(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary map at ``size`` (the mask stride): a cell is set where most of its pixels are."""
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    padded = F.pad(t, (0, size[1] * MASK_STRIDE - mask.shape[1], 0, size[0] * MASK_STRIDE - mask.shape[0]))
    return (F.avg_pool2d(padded, MASK_STRIDE)[0, 0] >= 0.5).numpy().astype(np.uint8)


def _centre_region(cy: float, cx: float, half_h: float, half_w: float, s: int, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the cells of an S x S grid in an instance's centre region: its box scaled by
    sigma around the centre of mass, at most the 3 x 3 cells around the centre's cell."""
    h, w = shape
    coord_y, coord_x = int(cy / h * s), int(cx / w * s)
    top = max(int((cy - half_h) / h * s), coord_y - 1, 0)
    bottom = min(int((cy + half_h) / h * s), coord_y + 1, s - 1)
    left = max(int((cx - half_w) / w * s), coord_x - 1, 0)
    right = min(int((cx + half_w) / w * s), coord_x + 1, s - 1)
    rows, cols = np.meshgrid(np.arange(top, bottom + 1), np.arange(left, right + 1), indexing="ij")
    return (rows * s + cols).ravel()


def point_nms(category: torch.Tensor, grids: tuple[int, ...]) -> torch.Tensor:
    """(N, C) scores with every cell that is not the maximum of its 2 x 2 neighbourhood zeroed."""
    out, start = [], 0
    for s in grids:
        level = category[start : start + s * s].T.reshape(1, -1, s, s)
        peak = F.max_pool2d(level, 2, stride=1, padding=1)[..., :-1, :-1]
        out.append((level * (peak == level)).reshape(-1, s * s).T)
        start += s * s
    return torch.cat(out, 0)


def detect(outputs: dict[str, torch.Tensor], class_set: ClassSet, cfg: Solov2Config, size: tuple[int, int]) -> dict:
    """The instances of one image: masks (K, H, W) bool and their logits at ``size``, classes and scores."""
    scores = point_nms(outputs["category"][0].float().sigmoid(), cfg.grids)
    scores[:, ~torch.as_tensor(class_set.thing_mask()[: scores.shape[1]], device=scores.device)] = 0
    cells, classes = (scores > cfg.score_threshold).nonzero(as_tuple=True)
    values = scores[cells, classes]
    top = values.argsort(descending=True)[: cfg.pre_nms]
    cells, classes, values = cells[top], classes[top], values[top]
    features = outputs["mask_features"][0].float()
    logits = torch.einsum("ke,ehw->khw", outputs["kernel"][0].float()[cells], features)
    masks = logits.sigmoid() > cfg.mask_threshold
    areas = masks.flatten(1).sum(1)
    keep = areas > 0
    maskness = (logits.sigmoid() * masks).flatten(1).sum(1) / areas.clamp(min=1)
    values = (values * maskness)[keep]
    logits, masks, classes = logits[keep], masks[keep], classes[keep]
    order = values.argsort(descending=True)
    logits, masks, classes, values = logits[order], masks[order], classes[order], values[order]
    values = matrix_nms(masks, classes, values, cfg.nms_sigma)
    kept = (values > cfg.update_threshold).nonzero()[:, 0]
    kept = kept[values[kept].argsort(descending=True)][: cfg.max_detections]
    full = (
        F.interpolate(logits[kept][None], size=size, mode="bilinear", align_corners=False)[0]
        if len(kept)
        else logits[:0]
    )
    return {
        "logits": full,
        "masks": full.sigmoid() > cfg.mask_threshold,
        "classes": classes[kept],
        "scores": values[kept],
    }


def _numbered(
    panoptic: torch.Tensor, masks: list[torch.Tensor], classes: list[int], scores: list[float]
) -> tuple[torch.Tensor, dict[int, float]]:
    """The masks painted as instances numbered per class in the order given; panoptic id -> score."""
    count: dict[int, int] = {}
    scored = {}
    for mask, cls, score in zip(masks, classes, scores):
        count[cls] = count.get(cls, 0) + 1
        if count[cls] >= LABEL_DIVISOR:
            raise InputError(f"more than {LABEL_DIVISOR - 1} instances of one class")
        panoptic[mask] = cls * LABEL_DIVISOR + count[cls]
        scored[cls * LABEL_DIVISOR + count[cls]] = score
    return panoptic, scored


def _stuff_base(semantic: torch.Tensor, class_set: ClassSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The semantic argmax's stuff as a panoptic map (thing pixels void until an instance takes them)."""
    labels = semantic.argmax(0)
    thing = torch.as_tensor(class_set.thing_mask()[: class_set.num_classes], device=labels.device)[labels]
    panoptic = labels.long() * LABEL_DIVISOR
    panoptic[thing] = IGNORE_PANOPTIC
    return panoptic, labels


def paste_instances(
    semantic: torch.Tensor, instances: dict, class_set: ClassSet, overlap: float
) -> tuple[torch.Tensor, dict[int, float]]:
    """Instances pasted by descending score where no higher-scored one is (an instance whose mask lies
    more than ``overlap`` under those is dropped), stuff from the semantic argmax elsewhere, thing
    pixels no instance takes void."""
    panoptic, _ = _stuff_base(semantic, class_set)
    taken = torch.zeros(panoptic.shape, dtype=torch.bool, device=panoptic.device)
    masks, classes, scores = [], [], []
    for mask, cls, score in zip(instances["masks"], instances["classes"].tolist(), instances["scores"].tolist()):
        area = int(mask.sum())
        if area == 0 or int((mask & taken).sum()) / area > overlap:
            continue
        mask = mask & ~taken
        taken |= mask
        masks.append(mask)
        classes.append(cls)
        scores.append(score)
    return _numbered(panoptic, masks, classes, scores)


def fuse_efficientps(
    semantic: torch.Tensor, instances: dict, class_set: ClassSet
) -> tuple[torch.Tensor, dict[int, float]]:
    """EfficientPS's fusion: each instance's logits m with its class's semantic logits s as
    (sigmoid(m) + sigmoid(s)) * (m + s), then a per-pixel argmax against the stuff logits."""
    panoptic, labels = _stuff_base(semantic, class_set)
    stuff = ~torch.as_tensor(class_set.thing_mask()[: class_set.num_classes], device=semantic.device)
    best = (
        semantic[stuff].max(0).values if stuff.any() else torch.full(labels.shape, -torch.inf, device=semantic.device)
    )
    winner = torch.full(labels.shape, -1, dtype=torch.long, device=semantic.device)
    for k, (m, cls) in enumerate(zip(instances["logits"], instances["classes"].tolist())):
        s = semantic[cls]
        fused = (m.sigmoid() + s.sigmoid()) * (m + s)
        better = (fused > best) & instances["masks"][k]
        best = torch.where(better, fused, best)
        winner[better] = k
    panoptic[winner >= 0] = IGNORE_PANOPTIC  # thing pixels of the semantic map stay void unless an instance wins them
    panoptic[(winner < 0) & stuff[labels]] = labels[(winner < 0) & stuff[labels]].long() * LABEL_DIVISOR
    masks = [winner == k for k in range(len(instances["classes"]))]
    kept = [k for k, m in enumerate(masks) if m.any()]
    classes, scores = instances["classes"].tolist(), instances["scores"].tolist()
    return _numbered(panoptic, [masks[k] for k in kept], [classes[k] for k in kept], [scores[k] for k in kept])
