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
from spino.data.unlabelled import add_unlabelled, is_image
from spino.errors import InputError, MissingFileError

# Names that usually are countable objects (things): COCO-panoptic's 80 thing categories, Cityscapes'
# and KITTI-360's, and a few a robot meets; less what Cityscapes counts as stuff (traffic light, which
# COCO counts as a thing: spino's users are mostly on streets). Used only to propose dataset.things for
# the user to confirm (tests/test_survey.py checks it against both datasets' lists).
USUAL_THINGS = frozenset(
    """person people pedestrian rider cyclist bicycle bike car truck bus train motorcycle motorbike
    airplane boat fire_hydrant stop_sign parking_meter bench bird cat dog horse sheep cow
    elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball
    ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork
    knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch
    potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone phone microwave oven
    toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush vehicle van
    trailer caravan two-wheeler scooter animal robot drone cone traffic_cone box crate pallet barrel
    tree_trunk rock fruit plant_pot""".split()
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
    unlabelled_folders: list[str] = field(default_factory=list)  # image folders beside the dataset's
    added: str | None = None  # what those folders added (spino.data.unlabelled.add_unlabelled)

    @property
    def annotation_split(self) -> str:
        """The split to annotate from: ``train`` where it has labels, else the one with the most."""
        if self.labelled.get("train"):
            return "train"
        return max(self.splits, key=lambda s: self.labelled.get(s, 0))

    @property
    def working_size(self) -> tuple[int, int]:
        return most_common_size(self.sizes)


class NoLayoutError(InputError):
    """A folder in none of the layouts spino reads."""


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
    raise NoLayoutError(
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
    """Whether a JSON file where COCO files are found is one; one that does not parse (a truncated
    export) is named with the parser's error, not passed over."""
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path}: not valid JSON ({err}); a truncated or unfinished export?") from err
    except OSError:
        return False
    return isinstance(data, dict) and "images" in data and "categories" in data


def find_dataset(root: Path) -> tuple[Path, list[str]]:
    """The dataset folder and the image folders beside it: ``root`` itself where it has a layout;
    else its one subfolder that has one (a labelling tool's export), and the other subfolders that
    hold images (the robot's unlabelled frames), proposed as dataset.unlabelled."""
    try:
        detect_layout(root)
        return root, []
    except NoLayoutError as err:
        children = [c for c in sorted(root.iterdir()) if c.is_dir() and not c.name.startswith(".")]
        found = [c for c in children if _has_layout(c)]
        if len(found) > 1:
            raise InputError(
                f"{root}: several datasets in it ({', '.join(c.name for c in found)}): run spino init on one"
            ) from err
        if not found:
            raise
    beside = [str(c) for c in children if c != found[0] and any(_images_under(c))]
    return found[0], beside


def _has_layout(folder: Path) -> bool:
    try:
        detect_layout(folder)
    except NoLayoutError:
        return False
    return True


def _images_under(folder: Path):
    return (p for p in folder.rglob("*") if is_image(p) and p.is_file())


def survey(root: str | Path) -> Survey:
    """Survey the dataset at ``root``, or in its one subfolder that holds one, with the image folders
    beside it (what ``spino init`` prints and writes a config from)."""
    root, beside = find_dataset(Path(root))
    kind, splits = detect_layout(root)
    result = Survey(root, kind, splits, unlabelled_folders=beside)
    things = None
    if kind == "coco":
        things, result.things_proposed = _coco_things(root, splits[0])
    dataset = open_dataset(kind, root, splits, None, things)
    result.class_names = list(dataset.class_set.names)
    result.things = [n for n, t in zip(dataset.class_set.names, dataset.class_set.thing) if t]
    records = dataset.scan()
    result.labelled.update(r.split for r in records if r.has_gt)
    records, result.added = add_unlabelled(records, beside, result.annotation_split)
    for record in records:
        if not record.has_gt:
            result.unlabelled[record.split] += 1
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
