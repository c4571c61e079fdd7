"""The ViT families a run may choose, with random weights (no hub here): DINOv2 (patch 14, the paper's)
and DINOv3 (patch 16, four registers, rotary positions). Each gives features without its prefix
tokens and before the final norm, at its stride; each tiles, autocasts, labels with the tiny heads
and trains a panoptic step through the same code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spino.backbone import Backbone, BackboneSpec
from spino.classes import DEMO
from spino.data import open_dataset
from spino.encoding import instance_of, semantic_of
from spino.labelgen.head_kinds import head_settings
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig
from spino.labelgen.train import train_head
from spino.panoptic.instances.center_offset.targets import panoptic_targets
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.targets import TargetConfig
from spino.panoptic.train import TrainConfig, losses

from helpers import tiny_model

# family -> (timm name, patch = feature stride, prefix tokens: class + registers)
FAMILIES = {
    "dinov2": ("vit_small_patch14_reg4_dinov2.lvd142m", 14, 5),
    "dinov3": ("vit_small_patch16_dinov3", 16, 5),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vit_features_drop_prefix_tokens_and_skip_the_final_norm(family: str) -> None:
    name, stride, prefix = FAMILIES[family]
    backbone = Backbone(BackboneSpec(name, "none"))
    x = torch.rand(1, 3, 2 * stride, 3 * stride) * 255
    feats = backbone(x)
    assert backbone.stride == stride and backbone.model.num_prefix_tokens == prefix
    assert feats.shape == (1, 384, 2, 3) and backbone.round_size(2 * stride + 2, 3 * stride - 2) == (
        2 * stride,
        3 * stride,
    )
    model = backbone.model
    final_norm, model.norm = model.norm, torch.nn.Identity()  # the model's own forward, without its final norm
    tokens = model.forward_features((x - backbone.mean) / backbone.std)
    model.norm = final_norm
    assert torch.allclose(feats, tokens[:, prefix:].transpose(1, 2).reshape(1, 384, 2, 3), atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vit_blocks_run_in_bf16_under_autocast_and_features_stay_fp32(family: str) -> None:
    backbone = Backbone(BackboneSpec(FAMILIES[family][0], "none"))
    seen: list[torch.dtype] = []
    backbone.model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    stride = backbone.stride
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = backbone(torch.rand(1, 3, 2 * stride, 2 * stride) * 255)
    assert seen == [torch.bfloat16] and feats.dtype == torch.float32


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vit_of_each_family_trains_tiny_heads_and_labels_tiled(family: str, demo_root: Path, tmp_path: Path) -> None:
    """Heads trained on its features label demo images at scales 1 and 2 (scale 2: tiles of the feed
    size, at its stride); every thing pixel gets an instance, no stuff pixel one."""
    name, stride, _ = FAMILIES[family]
    spec = BackboneSpec(name, "none")
    ds = open_dataset("demo", demo_root)
    records = ds.scan()[:2]
    samples = [ds.read_sample(r) for r in records]
    for kind, hidden in (("semantic", [16]), ("boundary", [8])):
        cfg = head_settings(kind, {"input_size": [4 * stride, 8 * stride], "epochs": 1, "hidden": hidden})
        train_head(cfg, spec, samples, DEMO, tmp_path / f"{kind}.pt", tmp_path / f"{kind}.csv")
    cfg = PseudoLabelConfig(
        semantic_scales=(1, 2), boundary_scales=(2,), boundary_threshold=0.5, min_pixels=5, chunk_pixels=4096
    )
    generator = LabelGenerator(tmp_path / "semantic.pt", tmp_path / "boundary.pt", cfg)
    for image, _ in samples:
        label = generator(image)
        assert label.panoptic.shape == image.shape[:2]
        thing = np.isin(semantic_of(label.panoptic), DEMO.thing_ids)
        assert len(np.unique(label.panoptic[thing])) >= 2  # measured: 6 to 13 thing instances per image
        assert (instance_of(label.panoptic)[thing] > 0).all() and (instance_of(label.panoptic)[~thing] == 0).all()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vit_of_each_family_trains_a_panoptic_step(family: str, demo_root: Path) -> None:
    """One step of the panoptic model on it: the trainable parts move, the frozen ViT does not."""
    name, stride, _ = FAMILIES[family]
    size = (2 * stride, 4 * stride)
    model = PanopticModel(ModelConfig.from_dict(tiny_model(size), {"name": name, "weights": "none"}), DEMO.num_classes)
    ds = open_dataset("demo", demo_root)
    labels = [ds.read_panoptic(r)[: size[0], : size[1]] for r in ds.scan()[:2]]
    targets = [panoptic_targets(label, DEMO, TargetConfig(), sigma=2.0) for label in labels]
    batch = {k: torch.stack([t[k] for t in targets]) for k in targets[0]}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    out = model(torch.rand(2, 3, *size) * 255)
    loss = losses(out, batch, TrainConfig.from_dict({"steps": 1}), model.instance_method)["loss"]
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert torch.isfinite(loss)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("semantic_head."))
