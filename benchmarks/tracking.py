"""Tracking on demo sequences: how much identity it keeps, and what it costs per frame.

    python benchmarks/tracking.py --model results/demo/panoptic/model.pt      # after `snakemake` on the demo
    python benchmarks/tracking.py --model results/demo/panoptic/model.pt --strip docs/images/tracking-strip.png \\
        --timing-model results/cityscapes-mini/student/none-750/model.pt

Demo sequences (``make-demo --frames``: cars and people crossing at their own speeds, occluding each
other, entering and leaving) at the demo model's image size, generated with a seed the demo's still
images never use. Printed:

- the trained model through ``spino segment --sequence`` (tracked) and plain ``spino segment``
  (per-frame instance ids, the baseline), each scored by ``spino evaluate --video``'s function: STQ,
  AQ, SQ, VPQ and its windows, id switches per 100 ground-truth tracks and per 100 track-frames;
- the oracle: the ground-truth maps with their ids scrambled in every frame, tracked;
- with ``--timing-model``: at 1024 x 512 (sequences rendered at that size), a ``Segmenter`` call
  per frame against the tracker's update on the same frames' ground-truth maps (which hold every
  object: the tracker's worst case), medians over the frames;
- with ``--strip``: a picture of six frames of one sequence, the frames, the model's segments
  coloured by per-frame instance (the baseline) and by track.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spino.classes import DEMO
from spino.data.io import read_image, write_png
from spino.data.synthetic import DemoSpec, write_demo_sequences
from spino.data.video import VideoLabels
from spino.deploy.segment_files import SegmentOptions, segment_files
from spino.deploy.segmenter import Segmenter
from spino.deploy.tracking import TrackConfig, Tracker
from spino.encoding import LABEL_DIVISOR
from spino.evaluate import score_video
from spino.metrics import VideoScores, format_video_summary
from spino.viz import overlay


def scrambled(semantic: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    present = np.unique(ids[ids > 0])
    numbers = np.zeros(int(ids.max()) + 1, np.int64)
    numbers[present] = rng.permutation(len(present)) + 1
    return semantic.astype(np.int64) * LABEL_DIVISOR + numbers[ids]


def oracle(labels: VideoLabels) -> dict:
    scores, rng = VideoScores(DEMO), np.random.default_rng(0)
    for sequence, names in labels.sequences().items():
        tracker = Tracker(DEMO, TrackConfig())
        for name in names:
            semantic, ids = labels.frame(name)
            pan = scrambled(semantic, ids, rng)
            table = np.zeros(int(pan.max()) + 1, np.uint32)
            for value, track in tracker.update(pan).items():
                table[value] = track
            scores.update(sequence, (semantic, ids), (semantic, table[pan]))
    return scores.result()


def report(name: str, result: dict, gt_tracks: int) -> None:
    per_track = 100 * result["id_switches"] / gt_tracks
    print(f"{name:>22}: {format_video_summary(result)}; {per_track:.1f} switches per 100 tracks")


def gt_track_count(labels: VideoLabels) -> int:
    return sum(
        len({int(i) for name in names for i in np.unique(labels.frame(name)[1]) if i})
        for names in labels.sequences().values()
    )


def timing(model: Path, frames: int, seed: int, workdir: Path) -> None:
    root = workdir / "large"
    write_demo_sequences(root, DemoSpec(n_train=1, n_val=1, height=512, width=1024, seed=seed), frames, 1)
    labels = VideoLabels(root, DEMO)
    names = labels.sequences()["seq_0000"]
    segmenter = Segmenter.from_checkpoint(model, device="cpu")
    images = [read_image(root / "images" / f"{n}.png") for n in names]
    segmenter(images[0])  # warm-up
    segment_s = []
    for image in images:
        start = time.perf_counter()
        segmenter(image)
        segment_s.append(time.perf_counter() - start)
    tracker, track_s, things = Tracker(DEMO, TrackConfig()), [], []
    for name in names:
        semantic, ids = labels.frame(name)
        pan = semantic.astype(np.int64) * LABEL_DIVISOR + ids
        start = time.perf_counter()
        mapping = tracker.update(pan)
        track_s.append(time.perf_counter() - start)
        things.append(len(mapping))
    seg, trk = float(np.median(segment_s)), float(np.median(track_s))
    print(
        f"1024 x 512, {len(names)} frames, {np.mean(things):.1f} things per frame: Segmenter {1000 * seg:.1f} ms, "
        f"tracker {1000 * trk:.1f} ms per frame (+{100 * trk / seg:.1f} %)"
    )


def strip(segmenter: Segmenter, root: Path, out: Path, sequence: str = "seq_0000") -> None:
    """Rows: frames; the model's segments with per-frame instance shades; coloured by track."""
    every = VideoLabels(root, DEMO).sequences()[sequence]
    results = dict(zip(every, segmenter.track(read_image(root / "images" / f"{n}.png") for n in every)))
    names = every[::5][:6]
    images = [read_image(root / "images" / f"{n}.png") for n in names]
    rows = [
        np.concatenate(images, axis=1),
        np.concatenate([overlay(i, results[n].panoptic, DEMO) for i, n in zip(images, names)], axis=1),
        np.concatenate(
            [overlay(i, results[n].panoptic, DEMO, tracks=results[n].track_map()) for i, n in zip(images, names)],
            axis=1,
        ),
    ]
    write_png(out, np.concatenate(rows, axis=0))
    print(f"{out}: frames {', '.join(n.split('/')[-1] for n in names)} of {sequence}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a trained demo model (results/demo/panoptic/model.pt)")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=7, help="generator seed of the sequences")
    p.add_argument("--timing-model", type=Path, help="a 1024 x 512 model to time the tracker against")
    p.add_argument("--strip", type=Path, help="write the frame strip here")
    args = p.parse_args()
    segmenter = Segmenter.from_checkpoint(args.model, device="cpu")
    height, width = (int(v) for v in segmenter.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "sequences"
        write_demo_sequences(
            root, DemoSpec(n_train=1, n_val=1, height=height, width=width, seed=args.seed), args.frames, args.sequences
        )
        labels = VideoLabels(root, DEMO)
        tracks = gt_track_count(labels)
        print(f"{args.sequences} sequences x {args.frames} frames of {width} x {height}, {tracks} ground-truth tracks")
        results = {}
        for name, track in (("per-frame ids", None), ("tracked", TrackConfig(enabled=True, sequence=True))):
            out = work / name.replace(" ", "-")
            start = time.perf_counter()
            segment_files(segmenter, [str(root / "images")], out, SegmentOptions(track=track, workers=0))
            seconds = time.perf_counter() - start
            results[name] = score_video(VideoLabels(out, DEMO), labels)
            report(name, results[name], tracks)
            print(f"{'':>22}  spino segment: {args.sequences * args.frames / seconds:.1f} frames/s")
        report("oracle (ids scrambled)", oracle(labels), tracks)
        if args.strip:
            strip(segmenter, root, args.strip)
        if args.timing_model:
            timing(args.timing_model, 20, args.seed, work)


if __name__ == "__main__":
    sys.exit(main())
