"""``spino segment``'s loop: frames read by a DataLoader worker, the model on batches, results written
by a thread, so that reading, the network and writing overlap and memory stays bounded (a few
batches in flight, whatever the number of images).

``<out>/segment.json`` (the model, the format, how many images, which inputs failed) is written
last: a folder without it was not finished.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from spino.classes import ClassSet
from spino.data.io import atomic_path, write_json
from spino.deploy.media import Frame, Source, frames, sources, video_info
from spino.deploy.outputs import OverlayVideo, write_overlay
from spino.deploy.segmenter import Segmentation, Segmenter
from spino.deploy.tracking import TrackConfig, Tracker
from spino.errors import InputError
from spino.export import LABEL_FORMATS, LabelWriter
from spino.progress import progress
from spino.transforms import image_tensor
from spino.viz import overlay


class FrameStream(IterableDataset):
    """Each worker's share of the sources, as (frame, the network's input) pairs: whole sequences
    (a video, or with ``sequences`` the images of a folder), so that a sequence's frames stay in order."""

    def __init__(self, items: list[Source], input_size: tuple[int, int], sequences: bool = False):
        self.items, self.input_size, self.sequences = items, input_size, sequences

    def __iter__(self):
        info = get_worker_info()
        groups = list(dict.fromkeys(sequence_of(s, self.sequences) for s in self.items))
        chosen = set(groups[info.id :: info.num_workers] if info else groups)
        for source in (s for s in self.items if sequence_of(s, self.sequences) in chosen):
            for frame in frames(source):
                yield frame, None if frame.image is None else image_tensor(frame.image, self.input_size)


def sequence_of(source: Source, folders: bool) -> str:
    """The sequence a source's frames belong to: a video's own name; with ``folders``, an image's
    folder (below the input); otherwise the image alone."""
    if source.is_video or not folders:
        return source.name
    return str(PurePosixPath(source.name).parent)


@dataclass
class Tracks:
    """A tracker per sequence (frames of several sequences may come interleaved from the loader's
    workers; each sequence's in order), and ``tracks.csv`` of every track at the end."""

    class_set: ClassSet
    config: TrackConfig
    device: torch.device
    folders: bool
    trackers: dict[str, Tracker] = field(default_factory=dict)

    def label(self, frame: Frame, result: Segmentation) -> Segmentation:
        sequence = sequence_of(frame.source, self.folders)
        tracker = self.trackers.get(sequence)
        if tracker is None:
            tracker = self.trackers[sequence] = Tracker(self.class_set, self.config, self.device)
        return result.with_tracks(tracker.update(result.panoptic))

    def write_csv(self, path: Path) -> None:
        rows = ["sequence,track_id,class,first_frame,last_frame,frames,mean_area"]
        for sequence, tracker in self.trackers.items():
            for r in tracker.records.values():
                name = self.class_set.names[r.class_id]
                rows.append(
                    f"{sequence},{r.track_id},{name},{r.first_frame},{r.last_frame},{r.frames},{r.mean_area:.1f}"
                )
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(rows) + "\n")


@dataclass
class Writer:
    """The outputs of each segmented frame, written in a background thread (one, so files of a video
    are written in frame order); at most ``limit`` frames wait."""

    out: Path
    output: LabelWriter
    class_set: ClassSet
    overlays: bool
    limit: int
    pending: deque = field(default_factory=deque)
    videos: dict = field(default_factory=dict)

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spino-writer")

    def submit(self, frame: Frame, result: Segmentation) -> None:
        self.pending.append(self.pool.submit(self._write, frame, result))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()

    def _write(self, frame: Frame, result: Segmentation) -> None:
        self.output.write(frame.name, result.panoptic, result.segment_ids())
        drawn = frame.source.is_video or self.overlays
        tracks = result.track_map() if result.tracked and drawn else None
        if frame.source.is_video:
            video = self.videos.get(frame.source.path)
            if video is None:
                path = self.out / "overlay" / f"{frame.source.name}.mp4"
                video = self.videos[frame.source.path] = OverlayVideo(path, video_info(frame.source.path)[1])
            video.add(overlay(frame.image, result.panoptic, self.class_set, tracks=tracks))
            if frame.last:
                self.videos.pop(frame.source.path).close()
        elif self.overlays:
            write_overlay(self.out, frame.name, frame.image, result.panoptic, self.class_set, tracks)

    def finish(self) -> None:
        """Wait for every write, then close the output and any overlay video whose source stopped
        before its last frame (a video that failed to decode midway, with --keep-going)."""
        while self.pending:
            self.pending.popleft().result()
        self.pool.submit(self.output.close).result()
        for video in self.videos.values():
            self.pool.submit(video.close).result()
        self.pool.shutdown()


@dataclass(frozen=True)
class SegmentOptions:
    """How ``segment_files`` reads and writes (``spino segment``'s options)."""

    format: str = "coco"  # a name of spino.export.LABEL_FORMATS
    overlays: bool = False  # also an overlay PNG of each image
    batch_size: int = 1
    workers: int = 1  # DataLoader processes decoding the inputs
    keep_going: bool = False  # an unreadable input is listed and skipped, not the end
    overwrite: bool = False  # write into a folder that is not empty
    model_name: str = ""  # what segment.json says the model was
    track: TrackConfig | None = None  # enabled: track ids for the things of videos (and sequences)


def segment_files(
    segmenter: Segmenter, inputs: list[str], out: Path, options: SegmentOptions = SegmentOptions()
) -> dict:
    """Segment every image and video frame of ``inputs`` into ``out``; returns the summary written
    to ``segment.json``. An unreadable input stops it with its one line, or with ``keep_going`` is
    listed and the others written (then InputError after the summary). With ``track`` (enabled),
    the things of each video (and with ``track.sequence`` of each folder of images) get track ids:
    the segment ids of the COCO maps, ``tracks.csv``, overlays coloured by track."""
    fmt, overlays, batch_size, track = options.format, options.overlays, options.batch_size, options.track
    tracking = track is not None and (track.enabled or track.sequence)
    if tracking and not LABEL_FORMATS.get(fmt).keeps_segment_ids:
        raise InputError(f"--format {fmt} cannot hold track ids; track with --format coco")
    items = sources(inputs)
    if tracking and not track.sequence and not any(s.is_video for s in items):
        print("spino segment: --track follows the things of videos, and these inputs hold none; "
              "--sequence makes each folder of images one sequence", file=sys.stderr)  # fmt: skip
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not options.overwrite):
        raise InputError(f"{out}: already exists and is not empty; pass --overwrite or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(
        out, LABEL_FORMATS.get(fmt)(out, segmenter.class_set), segmenter.class_set, overlays, 4 * batch_size
    )
    loader = DataLoader(
        FrameStream(items, segmenter.input_size, tracking and track.sequence),
        batch_size=None,
        num_workers=options.workers,
        prefetch_factor=2 * batch_size if options.workers else None,
    )
    tracks = Tracks(segmenter.class_set, track, segmenter.model.device, track.sequence) if tracking else None
    failed: list[str] = []
    count = 0
    batch: list[tuple[Frame, torch.Tensor]] = []
    for frame, tensor in progress(loader, "segment", total=expected_frames(items), unit="img"):
        if frame.error is not None:
            if not options.keep_going:
                raise InputError(frame.error)
            print(f"spino segment: skipped: {frame.error}", file=sys.stderr)
            failed.append(frame.error)
            continue
        batch.append((frame, tensor))
        if len(batch) == batch_size:
            count += run_batch(segmenter, batch, writer, tracks)
    count += run_batch(segmenter, batch, writer, tracks)
    writer.finish()
    summary = {"model": options.model_name, "format": fmt, "inputs": list(inputs), "frames": count, "failed": failed}
    if tracks is not None:
        tracks.write_csv(out / "tracks.csv")
        summary["tracking"] = {
            **dataclasses.asdict(track),
            "tracks": sum(len(t.records) for t in tracks.trackers.values()),
        }
    write_json(out / "segment.json", summary)
    if failed:
        listed = "\n".join(f"  {line}" for line in failed)
        raise InputError(f"{len(failed)} input(s) could not be read, the other {count} frames were written:\n{listed}")
    return summary


def run_batch(
    segmenter: Segmenter, batch: list[tuple[Frame, torch.Tensor]], writer: Writer, tracks: Tracks | None
) -> int:
    """Segment (and track) and hand to the writer the frames of ``batch`` (emptied); returns how many."""
    if not batch:
        return 0
    results = segmenter.segment_prepared(torch.stack([t for _, t in batch]), [f.image.shape[:2] for f, _ in batch])
    for (frame, _), result in zip(batch, results):
        writer.submit(frame, result if tracks is None else tracks.label(frame, result))
    n = len(batch)
    batch.clear()
    return n


def expected_frames(items: list[Source]) -> int | None:
    """Images plus the frames videos declare (None when a video does not say)."""
    total = 0
    for source in items:
        if not source.is_video:
            total += 1
            continue
        try:
            declared = video_info(source.path)[0]
        except Exception:  # an unreadable video (or no PyAV) fails later, with its own message
            return None
        if not declared:
            return None
        total += declared
    return total
