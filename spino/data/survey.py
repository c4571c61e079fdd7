"""What a dataset folder holds, before any config exists (``spino init``): its layout (the dataset
kind), splits, classes and which are things, labelled and unlabelled images, image sizes.

As nnU-Net fingerprints a dataset before planning, the survey reads only file listings, the JSON
files and image headers, so it takes seconds on thousands of images. What it cannot decide (COCO
categories without ``isthing``) it proposes, and says so: the user confirms in the config.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spino.data import open_dataset
from spino.data.coco import ANNOTATION_FILES
from spino.data.io import image_size
from spino.data.manifest import most_common_size
from spino.errors import InputError, MissingFileError

# Names that usually are countable objects (things): COCO's thing categories, Cityscapes' and
# KITTI-360's, and a few a robot meets. Used only to propose dataset.things for the user to confirm.
USUAL_THINGS = frozenset(
    """person people pedestrian rider cyclist bicycle bike car truck bus train motorcycle motorbike
    airplane boat traffic_light fire_hydrant stop_sign parking_meter bench bird cat dog horse sheep cow
    elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis snowboard ball kite
    bottle cup fork knife spoon bowl banana apple sandwich orange broccoli carrot pizza donut cake chair
    couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard phone microwave oven
    toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush vehicle van
    trailer caravan two-wheeler scooter animal robot drone cone traffic_cone pole_object box crate
    pallet barrel tree_trunk rock fruit plant_pot""".split()
)


@dataclass
class Survey:
    """What ``spino init`` found in a dataset folder."""

    root: Path
    kind: str
    splits: list[str]
    class_names: list[str] = field(default_factory=list)
    things: list[str] = field(default_factory=list)
    things_proposed: bool = False  # the categories do not say: ``things`` is a proposal to confirm
    labelled: Counter = field(default_factory=Counter)  # split -> labelled images
    unlabelled: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (H, W) -> images (upright: EXIF orientation applied)
    images: list[str] = field(default_factory=list)  # every image's path

    @property
    def annotation_split(self) -> str:
        """The split to annotate from: ``train`` where it has labels, else the one with the most."""
        if self.labelled.get("train"):
            return "train"
        return max(self.splits, key=lambda s: self.labelled.get(s, 0))

    @property
    def working_size(self) -> tuple[int, int]:
        return most_common_size(self.sizes)


def detect_layout(root: Path) -> tuple[str, list[str]]:
    """The dataset kind of a folder and its splits, from its files alone."""
    if not root.is_dir():
        raise MissingFileError(f"{root}: not a folder")
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes", sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())
    if (root / "data_2d_raw").is_dir() and (root / "data_2d_semantics").is_dir():
        return "kitti360", ["train", "val"]
    if (root / "classes.yaml").is_file() and (root / "images").is_dir():
        lists = sorted(p.stem for p in (root / "splits").glob("*.txt")) if (root / "splits").is_dir() else []
        return "folder", lists or ["train"]
    splits = coco_splits(root)
    if splits:
        return "coco", splits
    raise InputError(
        f"{root}: no dataset layout recognised: looked for COCO JSON ({', '.join(ANNOTATION_FILES)}), "
        "Cityscapes (leftImg8bit/ + gtFine/), KITTI-360, or a folder dataset (classes.yaml + images/); "
        "see docs/your-data.md"
    )


def coco_splits(root: Path) -> list[str]:
    """Split names of the COCO files under ``root``, by spino.data.coco's file patterns, in the order
    found (CVAT's ``instances_default.json`` is split ``default``; Label Studio's ``result.json``,
    ``result``)."""
    found: list[str] = []
    for pattern in ANNOTATION_FILES:
        prefix, _, suffix = pattern.partition("{split}")
        for path in sorted(root.glob(prefix + "*" + suffix)):
            split = str(path.relative_to(root))[len(prefix) : -len(suffix)]
            if "/" in split or split in found or not _is_coco(path):
                continue
            if pattern.startswith("annotations/{split}") and split.startswith(("panoptic_", "instances_")):
                continue  # matched by the more specific patterns
            found.append(split)
    return found


def _is_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "images" in data and "categories" in data


def survey(root: str | Path) -> Survey:
    """Survey the dataset at ``root`` (what ``spino init`` prints and writes a config from)."""
    root = Path(root)
    kind, splits = detect_layout(root)
    result = Survey(root, kind, splits)
    things = None
    if kind == "coco":
        things, result.things_proposed = _coco_things(root, splits[0])
    dataset = open_dataset(kind, root, splits, None, things)
    result.class_names = list(dataset.class_set.names)
    result.things = [n for n, t in zip(dataset.class_set.names, dataset.class_set.thing) if t]
    for record in dataset.scan():
        (result.labelled if record.has_gt else result.unlabelled)[record.split] += 1
        result.sizes[image_size(record.image)] += 1
        result.images.append(record.image)
    if not result.sizes:
        raise InputError(f"{root}: the {kind} layout was found, but no images in splits {splits}")
    return result


def _coco_things(root: Path, split: str) -> tuple[list[str] | None, bool]:
    """The things of a COCO dataset: None where every category says (``isthing``), else a proposal
    from the category names (USUAL_THINGS), and that it is one."""
    from spino.data.coco import CocoDataset

    categories = CocoDataset(root, [split], things=[]).files[split].categories
    if all("isthing" in c for c in categories):
        return None, False
    return [c["name"] for c in categories if _normalised(c["name"]) in USUAL_THINGS or c.get("isthing")], True


def _normalised(name: str) -> str:
    name = name.strip().lower().replace(" ", "_")
    return name[:-1] if name.endswith("s") and name[:-1] in USUAL_THINGS else name
