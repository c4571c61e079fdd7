"""Pseudo-label quality and cost of labelling variants, on the same trained heads and images.

    python benchmarks/label_quality.py --config config/examples/cityscapes-mini.yaml --split val \\
        --variant "" --variant "semantic_stride=1" --variant "semantic_stride=2" \\
        --variant "tile_overlap=0.5" --variant "semantic_scales=[1] boundary_scales=[1]"

Reads the run's heads, manifest and ground-truth store from results/<run>/ (run the workflow up to
the heads first). Each variant is a space-separated list of pseudo_labels settings (values in YAML)
applied on top of the config's, plus ``semantic_stride`` / ``boundary_stride`` to evaluate the
trained heads at another output stride, ``backbone_dtype=bfloat16`` to run the backbones so (with
``head_dtype=bfloat16``: the bf16 agreement), and ``embedding_head=PATH`` for ``fusion=embedding``.
Prints PQ, SQ, RQ, things/stuff PQ and mIoU of the split's images that were not annotated, seconds
per image, the share of pixels whose class is the first variant's (agree), and the share of
semantic-label changes that fall on tile borders (seams: 0 would mean no label edge ever coincides
with a tile edge).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
import yaml
from scored_run import add_run_arguments, open_scored_run

from spino.data.io import read_image
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig
from spino.labelgen.tta import tile_boxes
from spino.metrics import PanopticStats


def seam_share(semantic: np.ndarray, scales: set[int], overlap: float) -> float:
    """Label changes between neighbouring pixels across tile borders, per border pixel, over the rate elsewhere."""
    h, w = semantic.shape
    rows, cols = set(), set()
    for scale in scales - {1}:
        for y0, y1, x0, x1 in tile_boxes(h, w, scale, overlap):
            rows.update({y0, y1} - {0, h})
            cols.update({x0, x1} - {0, w})
    change_y = semantic[1:] != semantic[:-1]  # change between row r-1 and r at index r-1
    change_x = semantic[:, 1:] != semantic[:, :-1]
    on = [change_y[r - 1].mean() for r in rows] + [change_x[:, c - 1].mean() for c in cols]
    off_rows = [r for r in range(1, h) if r not in rows]
    off_cols = [c for c in range(1, w) if c not in cols]
    elsewhere = (change_y[[r - 1 for r in off_rows]].mean() + change_x[:, [c - 1 for c in off_cols]].mean()) / 2
    return float(np.mean(on) / elsewhere) if on and elsewhere > 0 else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--variant", action="append", default=[], help='e.g. "tile_overlap=0.5 semantic_stride=1"')
    args = p.parse_args()
    run = open_scored_run(args)
    config, results, entries, gt = run.config, run.results, run.entries, run.gt
    base = PseudoLabelConfig.from_dict(config["pseudo_labels"])
    print(f"{config['run']}: {len(entries)} {args.split} images, threads {torch.get_num_threads()}")
    print(
        f"{'variant':<58}{'PQ':>6}{'SQ':>6}{'RQ':>6}{'PQth':>6}{'PQst':>6}{'mIoU':>6}{'s/img':>7}{'agree':>8}{'seams':>7}"
    )
    first: dict[str, np.ndarray] = {}  # the first variant's classes, per image
    for variant in args.variant or [""]:
        settings = dict(pair.split("=", 1) for pair in variant.split())
        strides = {k: int(settings.pop(k)) for k in ("semantic_stride", "boundary_stride") if k in settings}
        embedding_head = settings.pop("embedding_head", None)
        backbone_dtype = settings.pop("backbone_dtype", None)
        overrides = {k: yaml.safe_load(v) for k, v in settings.items()}
        cfg = PseudoLabelConfig.from_dict({**config["pseudo_labels"], **overrides})
        cfg = replace(cfg, semantic_scales=tuple(cfg.semantic_scales), boundary_scales=tuple(cfg.boundary_scales))
        generator = LabelGenerator(
            results / "heads" / "semantic.pt",
            results / "heads" / "boundary.pt",
            cfg,
            "cpu",
            {"embedding": embedding_head} if embedding_head else None,
        )
        for key, stride in strides.items():
            setattr(generator, key, stride)
        if backbone_dtype:
            for backbone in (generator.semantic_backbone, generator.boundary_backbone):
                backbone.spec = replace(backbone.spec, dtype=backbone_dtype)
        stats = PanopticStats(generator.class_set.num_classes)
        seams, seconds, same, pixels = [], 0.0, 0, 0
        for entry in entries:
            image = read_image(entry.image)
            start = time.perf_counter()
            label = generator(image)
            seconds += time.perf_counter() - start
            stats.update(gt.panoptic(gt.index_of(entry.image_id)), label.panoptic, generator.class_set)
            seams.append(seam_share(label.semantic, set(cfg.semantic_scales), cfg.tile_overlap))
            reference = first.setdefault(entry.image_id, label.semantic)
            same, pixels = same + int((reference == label.semantic).sum()), pixels + reference.size
        s = stats.summary(generator.class_set)
        seam = (
            f"{np.mean([x for x in seams if not np.isnan(x)]):>7.2f}"
            if any(not np.isnan(x) for x in seams)
            else f"{'-':>7}"
        )
        name = variant or f"config as shipped ({base.semantic_scales}/{base.boundary_scales})"
        print(
            f"{name:<58}{100 * s['all']['pq']:>6.1f}{100 * s['all']['sq']:>6.1f}{100 * s['all']['rq']:>6.1f}"
            f"{100 * s['things']['pq']:>6.1f}{100 * s['stuff']['pq']:>6.1f}{100 * s['miou']:>6.1f}"
            f"{seconds / len(entries):>7.2f}{100 * same / pixels:>7.2f}%{seam}",
            flush=True,
        )


if __name__ == "__main__":
    main()
