"""Small builders shared by tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from spino.classes import DEMO, ClassSet
from spino.data import open_dataset
from spino.data.manifest import build_manifest, write_manifest
from spino.encoding import IGNORE_PANOPTIC, instance_of, semantic_of
from spino.store import LabelStore, create_store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXACT8 = SHARED_DATA / "cityscapes-exact8"
# The tiny run of the workflow tests, the SLURM test and CI (the catalog's .test/config/config.yaml).
TINY = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
# The rules that follow the heads: what new heads rerun.
AFTER_THE_HEADS = {
    "create_pseudo_label_store",
    "pseudo_label",
    "gather",
    "evaluate",
    "train_panoptic",
    "create_prediction_store",
    "predict",
    "report",
}

WIDTHS = ("channels", "decoder_channels", "head_channels")


def tiny_model(input_size: tuple[int, int], **settings) -> dict:
    """Config ``panoptic.model`` of a tiny model: the tiny run's widths (.test/config/config.yaml, the
    one place the tests' tiny sizes live) at ``input_size``, with ``settings`` added."""
    return {**{k: TINY["panoptic"]["model"][k] for k in WIDTHS}, "input_size": list(input_size), **settings}


def shrink_init_config(config: dict) -> None:
    """A config ``spino init`` wrote, shrunk in place to the tests' sizes (seconds, not minutes): the
    models' widths and lengths only, nothing of the data or the choices init made."""
    tiny = {
        "backbone": {"out_indices": [2, 3]},
        "semantic_head": {"hidden": [16, 16], "epochs": 5, "lr": 1e-2},
        "boundary_head": {"hidden": [16, 8], "epochs": 5, "lr": 1e-2},
    }
    for section, values in tiny.items():
        config[section].update(values)
    config["panoptic"]["model"].update({k: TINY["panoptic"]["model"][k] for k in WIDTHS})
    config["panoptic"]["train"].update({"steps": 4, "batch_size": 2, "checkpoint_every": 2, "val_every": 2})


def store_from_maps(
    path: Path,
    ids: list[str],
    maps: list[np.ndarray],
    class_set: ClassSet,
    per_shard: int = 3,
    image_paths: list[str] | None = None,
    confidences: list[np.ndarray] | None = None,
    runner_ups: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> LabelStore:
    """A complete store holding the given panoptic maps (and the paths of their images, the
    per-pixel confidences, and the runner-up classes with their probabilities, if given)."""
    h, w = maps[0].shape
    store = create_store(
        path,
        ids,
        h,
        w,
        class_set,
        per_shard,
        extra_attrs={"image_paths": image_paths} if image_paths else None,
        with_confidence=confidences is not None,
        with_runner_up=runner_ups is not None,
    )
    for i in range(store.num_shards):
        shard = store.shard(i)
        pan = np.stack(maps[shard.start : shard.stop])
        confidence = np.stack(confidences[shard.start : shard.stop]) if confidences is not None else None
        second = [np.stack(a) for a in zip(*runner_ups[shard.start : shard.stop])] if runner_ups else []
        store.write_shard(i, semantic_of(pan), pan, confidence, *second)
    store.finalize()
    return store


def official_pq(gt_json: Path, gt_dir: Path, pred_dir: Path, tmp: Path) -> dict:
    """cityscapesscripts' panoptic evaluator on COCO panoptic exports (``spino export --format coco``)."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    return evaluatePanoptic(
        str(gt_json), str(gt_dir), str(pred_dir / "panoptic.json"), str(pred_dir / "panoptic"), str(tmp / "pq.json")
    )


def assert_same_pq(ours: dict, official: dict, class_names: tuple[str, ...], tol: float = 1e-6) -> None:
    """Our summary's PQ/SQ/RQ (all, things, stuff and every class the evaluator scores) equal the evaluator's."""
    import pytest

    for ours_key, key in (("all", "All"), ("things", "Things"), ("stuff", "Stuff")):
        for m in ("pq", "sq", "rq"):
            assert ours[ours_key][m] == pytest.approx(official[key][m], abs=tol), (key, m)
        assert ours[ours_key]["n"] == official[key]["n"]
    for cat, values in official["per_class"].items():
        name = class_names[int(cat)]
        for m in ("pq", "sq", "rq"):
            assert ours["per_class"][name][m] == pytest.approx(values[m], abs=tol), (name, m)


STOP_HOOK = Path(__file__).parent / "stop_hook"


def kill_during_store_write(command: list[str], writes: int = 1) -> None:
    """Run a real spino command, stop it right after its ``writes``-th array write into a store
    (tests/stop_hook/sitecustomize.py), then kill -9 it there, as a crash or OOM kill would."""
    env = {
        **os.environ,
        "SPINO_TEST_STOP_AFTER_WRITES": str(writes),
        "PYTHONPATH": os.pathsep.join([str(STOP_HOOK), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the process ended before its store write: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def kill_when(path: Path, command: list[str]) -> None:
    """Run a real command and kill -9 it as soon as ``path`` exists (a training state: the run is
    then midway), as a crash or OOM kill would."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"


def beside(command: list[str]) -> subprocess.Popen:
    """A reference run started in the background while a test does the rest; ``succeeded`` ends it."""
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def succeeded(proc: subprocess.Popen, timeout: float | None = None) -> str:
    """The stderr of a run from ``beside``, read to its end (a full pipe would stall it), once it
    exited 0."""
    _, log = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log[-3000:]
    return log


def class_ious(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> list[float | None]:
    """IoU of each class counted from semantic maps (ground-truth 255: not scored); None for a class in
    neither map."""
    valid = gt != 255
    ious = []
    for c in range(num_classes):
        union = (((pred == c) | (gt == c)) & valid).sum()
        ious.append(((pred == c) & (gt == c) & valid).sum() / union if union else None)
    return ious


def matched_classes(confusion: np.ndarray) -> np.ndarray:
    """The class of each cluster under the one-to-one matching that maximises the pixels they share
    (rows of ``confusion``: classes; columns: clusters, then void), found by scipy directly: a check
    of spino's matching, not a reuse of it."""
    from scipy.optimize import linear_sum_assignment

    c = confusion.shape[0]
    classes, clusters = linear_sum_assignment(confusion[:, :c], maximize=True)
    return classes[np.argsort(clusters)]


def matched_miou(stats) -> float:
    """mIoU of cluster labels after that matching, counted from the confusion matrix."""
    confusion = stats.confusion
    c = confusion.shape[0]
    as_classes = np.zeros((c, c), dtype=np.int64)
    as_classes[:, matched_classes(confusion)] = confusion[:, :c]
    tp = np.diag(as_classes)
    return float(np.mean(tp / (confusion.sum(1) + as_classes.sum(0) - tp)))


def random_cluster_labels(masks, shape: tuple[int, int], clusters: int, rng: np.random.Generator) -> np.ndarray:
    """A panoptic map giving each principal mask (patch grid, -1: none) a cluster at random, at ``shape``:
    what PriMaPs' masks score by chance."""
    import torch
    import torch.nn.functional as F

    from spino.encoding import encode

    random_cluster = torch.from_numpy(rng.integers(0, clusters, int(masks.max()) + 1))
    patch = torch.where(masks >= 0, random_cluster[masks.clamp(min=0)], 255).float()
    chance = F.interpolate(patch[None, None], size=shape, mode="nearest")[0, 0].numpy().astype(np.uint8)
    return encode(chance, np.zeros(chance.shape, np.uint16))


def assert_inspect_picture(picture: np.ndarray, store: LabelStore, index: int, image: np.ndarray) -> None:
    """`spino inspect`'s picture of one store image: the image itself | its labels in the class colours
    (checked where no instance shade applies) | an overlay; what a picture of another image, or of
    nothing, would fail."""
    h, w = store.height, store.width
    assert picture.shape == (h, 3 * w, 3)
    assert np.array_equal(picture[:, :w], image)
    pan = store.panoptic(index)
    semantic = semantic_of(pan)
    plain = (instance_of(pan) == 0) & (pan != IGNORE_PANOPTIC)
    colours = np.asarray(store.class_set.colors, dtype=np.uint8)
    assert plain.mean() > 0.5 and np.array_equal(picture[:, w : 2 * w][plain], colours[semantic[plain]])


def assert_suggestion_figure(path: Path, k: int) -> None:
    """`spino suggest`'s figure: a PNG of the size its layout gives k images (a scatter above, a row of
    thumbnails per five images), with the thumbnails drawn (not left white)."""
    from PIL import Image

    columns, rows = min(5, k), -(-k // 5)
    picture = np.asarray(Image.open(path).convert("L"))
    assert picture.shape == (round((2.0 * rows + 4.5) * 80), round(3.2 * columns * 80))
    thumbnails = picture[-round(2.0 * rows * 80) :]
    assert (thumbnails < 200).mean() > 0.3, (thumbnails < 200).mean()


def cvat_export(demo_root: Path, out: Path, labelled: int, resized: int, size: tuple[int, int]) -> Path:
    """A demo dataset as CVAT exports a labelling job in COCO 1.0: ``annotations/instances_default.json``
    (split ``default``; categories without ``isthing``; one RLE annotation per thing instance and per
    connected stuff region) for the first ``labelled`` images, every image in ``images/default/``
    (the rest unlabelled), and the last ``resized`` images (labelled ones among them) at another ``size``
    (H, W), as a second camera would give them."""
    import json

    from PIL import Image

    from spino.data.io import resize_nearest

    demo = open_dataset("demo", demo_root)
    records = sorted(demo.scan(), key=lambda r: r.image_id)
    names = [r.image_id for r in records]
    chosen = set(names[: labelled - 1] + names[-1:])  # the last one is of the other size
    images_dir = out / "images" / "default"
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for n, (name, record) in enumerate(zip(names, records)):
        image, pan = demo.read_sample(record)
        if n >= len(names) - resized:
            image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))
            pan = resize_nearest(pan, size)
        Image.fromarray(image).save(images_dir / f"{name}.png")
        if name not in chosen:
            continue
        image_id = len(images) + 1
        h, w = pan.shape
        images.append({"id": image_id, "file_name": f"{name}.png", "height": h, "width": w})
        annotations += coco_annotations(pan, image_id, first_id=len(annotations) + 1)
    categories = [{"id": k + 1, "name": name, "supercategory": ""} for k, name in enumerate(DEMO.names)]
    (out / "annotations").mkdir()
    (out / "annotations" / "instances_default.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return out


def coco_annotations(pan: np.ndarray, image_id: int, first_id: int) -> list[dict]:
    """A demo panoptic map as a labelling tool's COCO instances: one RLE annotation per thing instance
    and per connected stuff region, category ids 1.. in the demo's class order."""
    from pycocotools import mask as coco_mask
    from scipy import ndimage

    semantic, instance = semantic_of(pan), instance_of(pan)
    annotations = []
    for cls in np.unique(semantic[semantic != 255]):
        if DEMO.thing[cls]:
            parts = [(instance == i) & (semantic == cls) for i in np.unique(instance[semantic == cls]) if i]
        else:
            regions, count = ndimage.label(semantic == cls)
            parts = [regions == r for r in range(1, count + 1)]
        for mask in parts:
            rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": first_id + len(annotations),
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                    "area": int(mask.sum()),
                    "bbox": [0, 0, 0, 0],
                    "iscrowd": 0,
                }
            )
    return annotations


def one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    """Exit 1, no traceback, and the message (the last line; progress bars may precede it) names the file."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"spino {command}: error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)


def training_inputs(demo_root: Path, out: Path, images: Path | None = None) -> dict:
    """Ground-truth and 'pseudo-label' stores (here: the ground truth itself) and a manifest; the
    stores point at the demo's images, or at copies of them in ``images``."""
    ds = open_dataset("demo", demo_root)
    records = ds.scan()
    maps = [ds.read_panoptic(r) for r in records]
    ids = [r.image_id for r in records]
    paths = [r.image for r in records]
    if images:
        images.mkdir()
        paths = [shutil.copy(path, images / Path(path).name) for path in paths]
    for name in ("gt", "pseudo"):
        store_from_maps(out / f"{name}.zarr", ids, maps, DEMO, image_paths=[str(p) for p in paths])
    train = [r.image_id for r in records if r.split == "train"]
    write_manifest(out / "m.csv", build_manifest(records, train[:2]))
    return {"dir": out, "ids": ids, "images": paths}


def spino_here(*args: str) -> subprocess.CompletedProcess:
    """``spino`` run by its entry point in this process (what the console script calls; no interpreter
    and torch start-up per call), its exit code and what it printed."""
    import contextlib
    import io

    from spino.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["spino", *args], code, out.getvalue(), err.getvalue())


def snakemake_command(workdir: Path, config: Path | None, *args: str, snakefile: Path | None = None) -> list[str]:
    """The command line of Snakemake on ``workdir`` with a config file (None: the workflow's default)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile or REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        *(["--configfile", str(config)] if config else []),
        *args,
    ]


def snakemake_env() -> dict[str, str]:
    """The environment Snakemake runs in: this Python's folder first on PATH, for the rules' `spino`."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(
    workdir: Path, config: dict | Path | None, *args: str, snakefile: Path | None = None, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    """Snakemake on ``workdir`` with a config (a dict is written to workdir/config.yaml; None: the default),
    on the CPU: the workflow tests' exact-weights and fingerprint checks hold there only (on a GPU,
    tests/test_panoptic.py and benchmarks/gpu_check.sh run the GPU paths)."""
    if isinstance(config, dict):
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        config = path
    env = {**snakemake_env(), "CUDA_VISIBLE_DEVICES": ""}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        snakemake_command(workdir, config, "--cores", "2", *args, snakefile=snakefile),
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )


# Stored pixels of a photo whose EXIF orientation (TIFF/EXIF 2.32, tag 0x0112) is o, given the upright
# picture a viewer shows: 2 mirrored, 3 turned half round, 4 upside down mirrored, 5 transposed, 6 the
# camera turned clockwise (stored turned a quarter counter-clockwise), 7 transversed, 8 the camera
# turned counter-clockwise. Written from the standard, not from Pillow's exif_transpose, which it checks.
STORED_AS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}


def exif_photo(upright: np.ndarray, path: Path, orientation: int) -> Path:
    """A JPEG as a phone writes it: the pixels as the sensor held them, and the EXIF orientation tag
    that turns them upright (quality 100 without chroma subsampling: within a few levels of ``upright``)."""
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored = np.ascontiguousarray(STORED_AS[orientation](upright))
    Image.fromarray(stored).save(path, format="JPEG", quality=100, subsampling=0, exif=exif)
    return path


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-stats table of a dry run (none when it has nothing to do)."""
    if "Nothing to be done" in result.stdout + result.stderr:
        return set()
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"job"}


def readme_rerun_table() -> list[tuple[str, set[str]]]:
    section = (REPO / "docs" / "caching.md").read_text()
    rows = re.findall(r"^\| `([\w.]+)` \| ([\w, ]+) \|$", section, re.M)
    assert len(rows) >= 3, "the table of what reruns (docs/caching.md) is missing"
    return [(key, set() if rules == "nothing" else {r.strip() for r in rules.split(",")}) for key, rules in rows]


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run (results, logs, .snakemake metadata; mtimes kept) to change without side effects."""
    shutil.copytree(run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def spino_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`spino <args>` in ``workdir``, its output captured."""
    return subprocess.run([sys.executable, "-m", "spino", *args], capture_output=True, text=True, cwd=workdir)
