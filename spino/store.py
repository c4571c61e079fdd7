"""Label stores: zarr v3 groups of per-image label maps, sharded along the image axis.

Layout (a plain ``zarr.open(path)`` reads it)::

    <store>/semantic      (N, H, W) uint8   train ids, 255 ignore
    <store>/panoptic      (N, H, W) uint32  spino.encoding (class * 1000 + instance)
    <store>/confidence    (N, H, W) float16 optional per-pixel confidence (the chosen class's probability)
    <store>/runner_up     (N, H, W) uint8   optional: each pixel's second most likely class (255: none)
    <store>/runner_up_confidence (N, H, W) uint8 optional: its probability x 255 (a soft target
                          needs no more precision; compressed, uint8 takes 2.3x less than float16)
    <store>/shard_done    (n_shards,) uint8 1 once a shard was written whole and read back
    attributes["spino"]   image_ids, class_set, height, width, images_per_shard, complete,
                          shards (per shard: file -> size, sha256), digest (set by finalize)

Every array is chunked one image per chunk and sharded ``images_per_shard`` images per shard
file. Writers own whole shards (zarr loses data when processes write different images of one
shard), each writer marks only its own ``shard_done`` chunk, and only ``finalize`` (one process,
after every shard is done) sets ``complete`` and records each shard file's size and sha256 and
the store's digest. A store whose writer died is therefore never reported complete, and
``missing_shards`` says what to rerun; a shard file lost or changed afterwards makes the store
incomplete again (sizes are checked on every open, contents with ``require_complete(content=True)``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spino.classes import IGNORE, ClassSet
from spino.data.io import read_image, resize_image, resize_nearest, write_json
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, PANOPTIC_DTYPE, semantic_of
from spino.errors import InputError, MissingFileError, with_path
from spino.provenance import file_digest, text_digest

FORMAT_VERSION = 1
ARRAY_DTYPES = {
    "semantic": np.uint8,
    "panoptic": PANOPTIC_DTYPE,
    "confidence": np.float16,
    "runner_up": np.uint8,
    "runner_up_confidence": np.uint8,
}
FILL_VALUES = {
    "semantic": IGNORE,
    "panoptic": IGNORE_PANOPTIC,
    "confidence": 0.0,
    "runner_up": IGNORE,
    "runner_up_confidence": 0,
}
# The arrays a store may hold beside semantic and panoptic, in the order write_shard takes them.
OPTIONAL_ARRAYS = ("confidence", "runner_up", "runner_up_confidence")


class IncompleteStoreError(InputError):
    """A store with a shard not written, lost or changed, or never gathered."""


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int


def create_store(
    path: str | Path,
    image_ids: list[str],
    height: int,
    width: int,
    class_set: ClassSet,
    images_per_shard: int,
    with_confidence: bool = False,
    extra_attrs: dict | None = None,
    with_runner_up: bool = False,
) -> LabelStore:
    """Create an empty store (in a temporary directory, renamed into place when ready). ``with_runner_up``
    (pseudo_labels.top2) adds each pixel's second class and its probability beside its confidence."""
    path = Path(path)
    if not image_ids:
        raise InputError(f"{path}: cannot create a label store for zero images")
    if len(set(image_ids)) != len(image_ids):
        raise InputError(f"{path}: image ids must be unique")
    if images_per_shard < 1:
        raise InputError(f"{path}: images_per_shard must be >= 1")
    if with_runner_up and not with_confidence:
        raise InputError(f"{path}: a store with runner-up classes needs the confidence array too")
    n = len(image_ids)
    n_shards = shard_count(n, images_per_shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        import zarr  # imported where used: every `snakemake` call imports this module (0.2 s saved)
        from zarr.codecs import ZstdCodec

        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        names = ["semantic", "panoptic"] + (["confidence"] if with_confidence else [])
        names += ["runner_up", "runner_up_confidence"] if with_runner_up else []
        for name in names:
            group.create_array(
                name,
                shape=(n, height, width),
                chunks=(1, height, width),
                shards=(images_per_shard, height, width),
                dtype=ARRAY_DTYPES[name],
                fill_value=FILL_VALUES[name],
                compressors=ZstdCodec(level=3),
                dimension_names=("image", "y", "x"),
            )
        group.create_array("shard_done", shape=(n_shards,), chunks=(1,), dtype=np.uint8, fill_value=0)
        group.attrs["spino"] = {
            "format": FORMAT_VERSION,
            "image_ids": list(image_ids),
            "class_set": class_set.to_dict(),
            "height": height,
            "width": width,
            "images_per_shard": images_per_shard,
            "complete": False,
            **(extra_attrs or {}),
        }
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return LabelStore(path)


class LabelStore:
    """A label store on disk (see the module docstring for its layout and completion rules)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise MissingFileError(f"{self.path}: not a spino label store (no zarr.json)")
        import zarr

        self.group = zarr.open_group(self.path, mode="r+")
        meta = self.group.attrs.get("spino")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise InputError(f"{self.path}: not a spino label store of format {FORMAT_VERSION}")
        self.meta = meta
        self.image_ids: list[str] = meta["image_ids"]
        self._index: dict[str, int] | None = None  # image id -> index, built when first asked
        self.images_per_shard: int = meta["images_per_shard"]
        self.height: int = meta["height"]
        self.width: int = meta["width"]

    # -- layout ---------------------------------------------------------------------------
    @property
    def class_set(self) -> ClassSet:
        return ClassSet.from_dict(self.meta["class_set"], source=str(self.path))

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_shards(self) -> int:
        return shard_count(self.num_images, self.images_per_shard)

    @property
    def has_confidence(self) -> bool:
        return "confidence" in self.group

    @property
    def has_runner_up(self) -> bool:
        return "runner_up" in self.group

    def shard(self, index: int) -> Shard:
        if not 0 <= index < self.num_shards:
            raise InputError(f"{self.path}: shard {index} out of range (0..{self.num_shards - 1})")
        start = index * self.images_per_shard
        return Shard(index, start, min(start + self.images_per_shard, self.num_images))

    @property
    def size(self) -> tuple[int, int]:
        """(H, W): every map of the store has it (the dataset's working size, spino.data.manifest)."""
        return self.height, self.width

    def read_image(self, path: str | Path) -> np.ndarray:
        """An image of this store at the store's size: images of another camera are resized bilinearly."""
        return resize_image(read_image(path), self.size)

    def fit_labels(self, label: np.ndarray) -> np.ndarray:
        """A label map at the store's size (nearest neighbour where its image's size differs)."""
        return label if label.shape == self.size else resize_nearest(label, self.size)

    def index_of(self, image_id: str) -> int:
        """The index of an image id: a dict built once, so that looking up every image of a store of N
        (a sampler, an evaluation) costs N lookups, not N x N/2 comparisons."""
        if self._index is None:
            self._index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        try:
            return self._index[image_id]
        except KeyError:
            raise InputError(f"{self.path}: image {image_id!r} not in store") from None

    # -- writing ----------------------------------------------------------------------------
    def write_shard(
        self,
        index: int,
        semantic: np.ndarray,
        panoptic: np.ndarray,
        confidence: np.ndarray | None = None,
        runner_up: np.ndarray | None = None,
        runner_up_confidence: np.ndarray | None = None,
    ) -> None:
        """Write one whole shard, read it back, and only then mark it done. The optional arrays are
        written where the store holds them (``runner_up_confidence``: probabilities in 0..1).

        Chunks equal to the fill value are written too, so every shard has its file on disk.
        """
        shard = self.shard(index)
        expected = (shard.stop - shard.start, self.height, self.width)
        data = {"semantic": semantic, "panoptic": panoptic}
        if runner_up_confidence is not None:
            runner_up_confidence = np.round(runner_up_confidence.astype(np.float32) * 255)
        given = dict(zip(OPTIONAL_ARRAYS, (confidence, runner_up, runner_up_confidence)))
        for name in OPTIONAL_ARRAYS:
            if name in self.group:
                if given[name] is None:
                    raise ValueError(f"{self.path}: this store holds {name}; pass it for shard {index}")
                data[name] = given[name]
        for name, arr in data.items():
            if arr.shape != expected:
                raise ValueError(f"{self.path}: shard {index} {name} has shape {arr.shape}, expected {expected}")
        if not np.array_equal(semantic_of(panoptic), semantic):
            raise ValueError(f"{self.path}: shard {index}: semantic and panoptic disagree")
        self.group["shard_done"][index] = 0
        import zarr

        with zarr.config.set({"array.write_empty_chunks": True}):
            for name, arr in data.items():
                try:
                    self.group[name][shard.start : shard.stop] = arr.astype(ARRAY_DTYPES[name], copy=False)
                except OSError as err:  # e.g. a full disk: the shard stays not done
                    raise with_path(err, self.path / name) from err
        for name, arr in data.items():
            if not np.array_equal(self.group[name][shard.start : shard.stop], arr.astype(ARRAY_DTYPES[name])):
                raise OSError(f"{self.path}: shard {index} of {name} did not read back as written")
        self.group["shard_done"][index] = 1

    def missing_shards(self) -> list[int]:
        """Shards whose writer has not finished (their ``shard_done`` mark is not set)."""
        done = self.group["shard_done"][:]
        return [int(i) for i in np.flatnonzero(done != 1)]

    @property
    def arrays(self) -> list[str]:
        return [name for name in ARRAY_DTYPES if name in self.group]

    def shard_files(self, index: int) -> dict[str, Path]:
        """The file of each array that holds shard ``index`` (zarr v3 keys: one file per shard)."""
        self.shard(index)
        return {name: self.path / name / "c" / str(index) / "0" / "0" for name in self.arrays}

    def shard_digest(self, index: int) -> dict[str, dict]:
        """Size and sha256 of each file of a shard, relative to the store (what gather records)."""
        digest = {}
        for path in self.shard_files(index).values():
            if not path.is_file():
                raise IncompleteStoreError(f"{self.path}: shard {index}: {path.relative_to(self.path)} is missing")
            digest[str(path.relative_to(self.path))] = {"size": path.stat().st_size, "sha256": file_digest(path)}
        return digest

    def finalize(self) -> dict:
        """Check every shard, record each shard's digest and the store's, and mark the store complete."""
        missing = self.missing_shards()
        if missing:
            raise IncompleteStoreError(f"{self.path}: shards {missing} of {self.num_shards} are not written")
        shards = [self.shard_digest(i) for i in range(self.num_shards)]
        digest = text_digest(json.dumps({"image_ids": self.image_ids, "shards": shards}, sort_keys=True))
        self.meta = {**self.meta, "complete": True, "shards": shards, "digest": digest}
        self.group.attrs["spino"] = self.meta
        return {"store": str(self.path), "images": self.num_images, "shards": self.num_shards, "digest": digest}

    def damaged_shards(self, content: bool = False) -> dict[int, str]:
        """Shards whose files differ from the digests gather recorded: sizes, and sha256 if ``content``."""
        damaged = {}
        for index, files in enumerate(self.meta.get("shards") or []):
            for relative, recorded in files.items():
                problem = file_problem(self.path / relative, recorded, content)
                if problem:
                    damaged[index] = f"{relative} {problem}"
                    break
        return damaged

    @property
    def digest(self) -> str:
        """The digest gather recorded over every shard's content (it names what a model was trained on)."""
        self.require_complete()
        return self.meta["digest"]

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete")) and not self.missing_shards() and not self.damaged_shards()

    def require_complete(self, content: bool = False) -> None:
        """Raise naming the store and the first bad shard unless the store is complete and intact."""
        missing = self.missing_shards()
        damaged = self.damaged_shards(content)
        if missing:
            detail = f"shards {missing} of {self.num_shards} are not written"
        elif damaged:
            index, problem = next(iter(damaged.items()))
            detail = f"shard {index} is damaged ({problem}); rerun its job (the workflow plans it again)"
        elif not self.meta.get("complete"):
            detail = "it was never gathered (spino gather)"
        else:
            return
        raise IncompleteStoreError(f"{self.path}: label store is incomplete: {detail}")

    # -- reading ----------------------------------------------------------------------------
    def panoptic(self, index: int) -> np.ndarray:
        return self._read("panoptic", index, index + 1)[0]

    def confidence(self, index: int) -> np.ndarray:
        """The per-pixel confidence (float16) of a store that holds it (``has_confidence``)."""
        return self.image_array("confidence", index)

    def runner_up(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's second most likely class (uint8, 255: none) and its probability (float32, in
        steps of 1/255), in a store that holds them (``has_runner_up``)."""
        probability = self.image_array("runner_up_confidence", index).astype(np.float32) / 255
        return self.image_array("runner_up", index), probability

    def image_array(self, name: str, index: int) -> np.ndarray:
        """One image's map of array ``name`` as stored (see ``ARRAY_DTYPES``)."""
        if name not in self.group:
            raise InputError(f"{self.path}: the store holds no {name} array (its arrays: {', '.join(self.arrays)})")
        return self._read(name, index, index + 1)[0]

    def panoptic_at_image_size(self, index: int) -> np.ndarray:
        """The map at its image's own size (nearest neighbour), where the store holds it at another
        (mixed cameras): what exports write, so each label lies on its image."""
        sizes = self.meta.get("image_sizes")
        size = tuple(sizes[index]) if sizes else self.size
        panoptic = self.panoptic(index)
        return panoptic if panoptic.shape == size else resize_nearest(panoptic, size)

    def read_shard(self, index: int, name: str = "panoptic") -> np.ndarray:
        shard = self.shard(index)
        return self._read(name, shard.start, shard.stop)

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Images start..stop of an array; a chunk that cannot be decoded is named with its store and shard."""
        try:
            return self.group[name][start:stop]
        except Exception as err:  # zarr's codecs raise several types (checksums, zstd, sizes)
            index = start // self.images_per_shard
            raise InputError(
                f"{self.path}: {name} of shard {index} ({name}/c/{index}/0/0) cannot be read ({err}); "
                "the store is damaged: rerun that shard's job"
            ) from err


def file_problem(path: Path, recorded: dict, content: bool = False) -> str:
    """What differs between a file and its recorded size (and sha256 if ``content``); "" if nothing."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != recorded["size"]:
        return f"has {size} bytes, {recorded['size']} were recorded"
    if content and file_digest(path) != recorded["sha256"]:
        return "differs from its recorded sha256"
    return ""


def marker_problem(marker: str | Path) -> str:
    """ "" while the shard a job's done-marker describes is on disk as the job wrote it, else what is wrong."""
    marker = Path(marker)
    try:
        payload = json.loads(marker.read_text())
        store, files = Path(payload["store"]), payload["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # no marker yet, or one from before digests were recorded: Snakemake judges it alone
    for relative, recorded in files.items():
        problem = file_problem(store / relative, recorded)
        if problem:
            return f"{store / relative} {problem}"
    return ""


def remove_damaged_markers(markers: Iterable[str | Path]) -> dict[str, str]:
    """Remove the done-marker of every shard whose file was lost or changed since its job, and say why.

    The workflow calls this when it starts: the marker claims a shard that is no longer there, and
    without it Snakemake plans exactly that shard's job again (and everything downstream). An older
    mtime would not do: Snakemake skips mtime checks for jobs downstream of a checkpoint (the index).
    """
    damaged = {}
    for marker in markers:
        problem = marker_problem(marker)
        if problem:
            Path(marker).unlink()
            damaged[str(marker)] = problem
    return damaged


def shard_count(num_images: int, images_per_shard: int) -> int:
    return -(-num_images // images_per_shard)


# The stores a run writes (config `stores`, the workflow's {store} wildcard, `spino create-store --kind`).
STORE_NAMES = ("ground_truth", "pseudo_labels", "predictions")


def mark_shard_done(done: str | Path | None, store: LabelStore, index: int, payload: dict) -> dict:
    """The shard job's marker: what it wrote, with each shard file's size and sha256 (written to
    ``done`` when given). The workflow compares these with the files (marker_problem) to plan a
    shard whose file was lost or changed again."""
    marker = {"store": str(store.path), "shard": index, **payload, "files": store.shard_digest(index)}
    if done is not None:
        write_json(done, marker)
    return marker


def store_summary(store: LabelStore, verify: bool = False) -> dict:
    """What ``spino info`` shows: shape, shards, what is missing or damaged, the class set."""
    missing = store.missing_shards()
    damaged = store.damaged_shards(content=verify)
    names = store.class_set.names
    return {
        "path": str(store.path),
        "kind": store.meta.get("kind"),
        "images": store.num_images,
        "shape": [store.num_images, store.height, store.width],
        "images_per_shard": store.images_per_shard,
        "shards": store.num_shards,
        "missing_shards": missing,
        "damaged_shards": {str(i): problem for i, problem in damaged.items()},
        "complete": bool(store.meta.get("complete")) and not missing and not damaged,
        "verified": "sizes and sha256" if verify else "sizes",
        "digest": store.meta.get("digest"),
        "confidence": store.has_confidence,
        "arrays": store.arrays,  # runner_up and runner_up_confidence: written with pseudo_labels.top2
        "class_set": store.class_set.name,
        "classes": list(names),
        "things": [names[i] for i in store.class_set.thing_ids],
    }


def class_counts(store: LabelStore) -> dict:
    """Pixels and segments per class over the written shards."""
    pixels = np.zeros(256, np.int64)
    segments = np.zeros(256, np.int64)
    done = set(range(store.num_shards)) - set(store.missing_shards())
    for i in sorted(done):
        pan = store.read_shard(i)
        pixels += np.bincount((pan // LABEL_DIVISOR).ravel(), minlength=256)[:256]
        for image in pan:
            segments += np.bincount(np.unique(image) // LABEL_DIVISOR, minlength=256)[:256]
    counts = {
        name: {"pixels": int(pixels[i]), "segments": int(segments[i])} for i, name in enumerate(store.class_set.names)
    }
    return counts | {"ignore": {"pixels": int(pixels[255])}}
