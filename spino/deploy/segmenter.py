"""``spino.Segmenter``: a trained model as a function from images to panoptic segmentations.

    from spino import Segmenter
    segment = Segmenter.from_checkpoint("results/demo/panoptic/model.pt")
    result = segment(image)              # a file path, numpy (H, W, 3) uint8, a PIL image or a (3, H, W) tensor
    result.panoptic, result.semantic     # (H, W) maps at the image's own size
    [(s.class_name, s.area, s.score) for s in result.segments]
    for result in segment.track(video_frames):   # things keep their track_id from frame to frame
        ...

Each image is fed at the model's input size and post-processed at its own size, exactly as
``spino predict`` does (the same functions), so the deployed path and the workflow's predictions
agree pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spino.classes import IGNORE, ClassSet
from spino.data.io import read_image
from spino.deploy.model_files import LoadedModel, open_model
from spino.deploy.tracking import TrackConfig, Tracker
from spino.devices import resolve_device
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR, PANOPTIC_DTYPE, semantic_of
from spino.errors import InputError
from spino.panoptic.predict import batch_outputs
from spino.transforms import image_tensor


@dataclass(frozen=True)
class Segment:
    """One segment of a panoptic map."""

    id: int  # its value in the panoptic map: class * 1000 + instance (0 for a stuff region)
    class_id: int  # train id, an index into the model's class set
    class_name: str
    is_thing: bool
    area: int  # pixels
    score: float | None  # the instance method's confidence (things only; None where it has none)
    track_id: int | None = None  # in a tracked sequence (Segmenter.track), the thing's identity over frames


@dataclass
class Segmentation:
    """The segmentation of one image, at its own size."""

    panoptic: np.ndarray  # (H, W) uint32: class * 1000 + instance; 255000 void (spino.encoding)
    semantic: np.ndarray  # (H, W) uint8 train ids, 255 void
    segments: list[Segment]
    tracked: bool = False  # its things carry track ids (Segmenter.track)

    def with_tracks(self, track_of: dict[int, int]) -> Segmentation:
        """This segmentation with each thing segment's track id ({panoptic value: track id})."""
        segments = [replace(s, track_id=track_of.get(s.id)) for s in self.segments]
        return Segmentation(self.panoptic, self.semantic, segments, tracked=True)

    def segment_ids(self) -> dict[int, int] | None:
        """The id each segment is written as in a video's panoptic PNG: a thing's track id, a stuff
        (or crowd) region's class id + 1 (below FIRST_TRACK_ID); None where not tracked."""
        if not self.tracked:
            return None
        return {s.id: s.track_id if s.track_id is not None else s.class_id + 1 for s in self.segments}

    def track_map(self) -> np.ndarray:
        """(H, W) uint32: each thing pixel's track id, 0 elsewhere."""
        table = np.zeros(IGNORE_PANOPTIC + 1, np.uint32)  # every value of spino's encoding
        for s in self.segments:
            table[s.id] = s.track_id or 0
        return table[self.panoptic]


class Segmenter:
    """A model (checkpoint, safetensors bundle or ONNX file) and its post-processing; call it on
    images. On a GPU the network runs under bf16 autocast (``amp``); the post-processing in fp32."""

    def __init__(self, model: LoadedModel, amp: bool = True):
        self.model = model
        self.class_set = model.class_set
        self.input_size = tuple(model.model_cfg.input_size)
        self.method = model.model_cfg.method()
        self.amp = amp and model.device.type == "cuda" and isinstance(model.network, torch.nn.Module)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", amp: bool = True) -> Segmenter:
        """From ``model.pt``, a ``.safetensors`` bundle or an ``.onnx`` file (``spino export-model``)."""
        return cls(open_model(path, torch.device(resolve_device(device))), amp)

    def __call__(self, images) -> Segmentation | list[Segmentation]:
        """One image (a file path, numpy (H, W, 3) uint8, PIL image, tensor (3, H, W) 0..255) gives one
        Segmentation; a list of them, a (B, 3, H, W) tensor or a (B, H, W, 3) array gives a list."""
        if isinstance(images, list) or (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
            return self.segment([as_array(image) for image in images])
        return self.segment([as_array(images)])[0]

    def track(self, frames: Iterable, config: TrackConfig | None = None) -> Iterator[Segmentation]:
        """The frames of one sequence (images in any form ``__call__`` takes), in order, each
        segmented and its things given track ids that persist from frame to frame (a generator:
        frames are read as they are needed, so a camera stream works)."""
        tracker = Tracker(self.class_set, config or TrackConfig(), self.model.device)
        for frame in frames:
            result = self(frame)
            yield result.with_tracks(tracker.update(result.panoptic))

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """The network's input for one image: (3, h, w) float at the model's input size, on the CPU."""
        return image_tensor(image, self.input_size)

    def segment(self, images: list[np.ndarray]) -> list[Segmentation]:
        return self.segment_prepared(torch.stack([self.prepare(i) for i in images]), [i.shape[:2] for i in images])

    @torch.no_grad()
    def segment_prepared(self, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Segmentation]:
        """Segmentations of a prepared batch (B, 3, h, w), each post-processed at its image's ``sizes``."""
        device = self.model.device
        precision = torch.autocast(device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with precision:
            outputs = batch_outputs(self.model.network, batch.to(device), self.method, self.model.postprocess.flip)
        return [self.postprocess({k: v[i : i + 1] for k, v in outputs.items()}, sizes[i]) for i in range(len(sizes))]

    def postprocess(self, outputs: dict[str, torch.Tensor], size: tuple[int, int]) -> Segmentation:
        pan, scores = self.method.scored_panoptic(
            outputs["semantic"], outputs, self.class_set, self.model.postprocess, tuple(size)
        )
        panoptic = pan.cpu().numpy().astype(PANOPTIC_DTYPE)
        return Segmentation(panoptic, semantic_of(panoptic), segments_of(panoptic, self.class_set, scores))


def segments_of(panoptic: np.ndarray, class_set: ClassSet, scores: dict[int, float] | None = None) -> list[Segment]:
    """The segments of a panoptic map, with the instance method's scores of its things where given."""
    counts = np.bincount(panoptic.ravel(), minlength=IGNORE_PANOPTIC + 1)  # a few times faster than np.unique
    ids = np.flatnonzero(counts)
    areas = counts[ids]
    thing = class_set.thing_mask()
    segments = []
    for pid, area in zip(ids.tolist(), areas.tolist()):
        cls = pid // LABEL_DIVISOR
        if cls == IGNORE:  # void (IGNORE_PANOPTIC)
            continue
        is_thing = bool(thing[cls])
        score = (scores or {}).get(pid) if is_thing else None
        segments.append(Segment(pid, cls, class_set.names[cls], is_thing, area, score))
    return segments


def as_array(image) -> np.ndarray:
    """An RGB image as (H, W, 3) uint8, from a file path, numpy, PIL or a (3, H, W) tensor in 0..255;
    files and PIL images upright (their EXIF orientation applied, as a viewer shows them)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise InputError(f"an image tensor must be (3, H, W), got {tuple(image.shape)}")
        return image.detach().cpu().permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    if hasattr(image, "convert"):  # PIL
        from PIL import ImageOps

        return np.array(ImageOps.exif_transpose(image).convert("RGB"))
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"an image array must be (H, W, 3) RGB, got {image.shape}")
    return image.astype(np.uint8, copy=False)
