"""`spino init`: survey a dataset folder and write a config for it (the first step for your own data)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from spino.data.io import atomic_path, describe_orientations
from spino.data.survey import survey
from spino.errors import InputError
from spino.estimate import Work, describe_cost
from spino.starter_config import PROFILES, run_name, starter_config

HELP = "survey your dataset (layout, splits, classes, labels, sizes) and write a config for it"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="the dataset folder (COCO export, Cityscapes, KITTI-360 or folder layout)")
    p.add_argument("--profile", choices=PROFILES, default="cpu", help="cpu: a laptop's first run; paper: GPUs")
    p.add_argument("--run", default=None, help="the run's name (default: the folder's name)")
    p.add_argument("--out", type=Path, default=None, help="the config to write (default: config/<run>.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing config")


def run(args: argparse.Namespace) -> None:
    from spino.choices import check_config  # with the registries that fill the schema's choices

    found = survey(args.root)
    # named after the folder the user gave, also where the dataset is a subfolder of it (an export beside raw/)
    text = starter_config(found, args.profile, args.run or run_name(args.root))
    config = check_config(yaml.safe_load(text))  # what the workflow will check: never write one it refuses
    out = args.out or Path("config") / f"{config['run']}.yaml"
    if out.exists() and not args.force:
        raise InputError(f"{out}: exists; choose another --out or pass --force")
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    print(describe(found))
    print(describe_cost(config, survey_work(found, config)))
    print(f"wrote {out}; check the lines marked CONFIRM, then: snakemake --configfile {out}")


def describe(found) -> str:
    """The survey in a few lines: what was found, and what the user must decide."""
    sizes = ", ".join(f"{n} at {w}x{h}" for (h, w), n in found.sizes.most_common(4))
    splits = ", ".join(
        f"{s}: {found.labelled.get(s, 0)} labelled + {found.unlabelled.get(s, 0)} unlabelled" for s in found.splits
    )
    lines = [
        f"{found.root}: a {found.kind} dataset",
        f"splits: {splits}",
        f"images: {sizes}"
        + (" (mixed sizes: the stores hold them at the most common)" if len(found.sizes) > 1 else ""),
        f"classes ({len(found.class_names)}): things {', '.join(found.things) or 'none'}; stuff "
        + (", ".join(n for n in found.class_names if n not in found.things) or "none"),
    ]
    if found.added:
        lines.append(found.added)
    turned = describe_orientations(found.images)
    if turned:
        lines.append(turned)
    if found.things_proposed:
        lines.append("not decided: the categories lack isthing; the config proposes dataset.things (CONFIRM)")
    return "\n".join(lines)


def survey_work(found, config: dict) -> Work:
    """What the config's run will do with the surveyed images (for its time estimate)."""
    annotation = config["annotation"]
    annotated = len(annotation.get("ids") or annotation.get("indices") or []) or annotation.get("k", 0)
    return Work(
        images={s: found.labelled.get(s, 0) + found.unlabelled.get(s, 0) for s in found.splits},
        labelled={s: found.labelled.get(s, 0) for s in found.splits},
        annotated=annotated,
        size=tuple(config["dataset"]["image_size"] or found.working_size),
    )
