"""The tracker: identities through motion, gaps and occlusion (ground-truth maps with their ids
scrambled per frame must come back as tracks), ids never reused, one class per track; and the
overlay video of a tracked sequence keeps each object's colour (read back from the encoded video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spino.classes import DEMO
from spino.data.io import read_image, read_label
from spino.data.synthetic import DemoSpec, write_demo_sequences
from spino.data.video import VideoLabels
from spino.deploy.tracking import FIRST_TRACK_ID, TrackConfig, Tracker, assign
from spino.encoding import LABEL_DIVISOR
from spino.metrics import VideoScores

CAR, PERSON, ROAD = 6, 5, 0


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sequences")
    write_demo_sequences(root, DemoSpec(n_train=1, n_val=1, height=96, width=192, seed=2), 20, 4)
    return root


def scrambled(frames: list, rng: np.random.Generator) -> list[np.ndarray]:
    """Panoptic maps of the frames with each frame's instances renumbered at random (1..n)."""
    out = []
    for semantic, ids in frames:
        present = np.unique(ids[ids > 0])
        numbers = np.zeros(int(ids.max()) + 1, np.int64)
        numbers[present] = rng.permutation(len(present)) + 1
        out.append(semantic.astype(np.int64) * LABEL_DIVISOR + numbers[ids])
    return out


def track_ids(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each panoptic map of a sequence as a map of its things' track ids (0 elsewhere)."""
    tracker, out = Tracker(DEMO, TrackConfig()), []
    for pan in frames:
        table = np.zeros(int(pan.max()) + 1, np.uint32)
        for value, track in tracker.update(pan).items():
            table[value] = track
        out.append(table[pan])
    return out


def test_ground_truth_with_scrambled_ids_comes_back_as_its_tracks(sequences: Path) -> None:
    """The oracle: perfect segments, identities thrown away per frame; the tracker must restore them
    through crossing, occluding, entering and leaving objects."""
    labels = VideoLabels(sequences, DEMO)
    scores = VideoScores(DEMO, windows=(1,))
    baseline = VideoScores(DEMO, windows=(1,))
    rng = np.random.default_rng(0)
    for sequence, names in labels.sequences().items():
        frames = [labels.frame(n) for n in names]
        panoptic = scrambled(frames, rng)
        for (semantic, ids), pan, tracked in zip(frames, panoptic, track_ids(panoptic)):
            scores.update(sequence, (semantic, ids), (semantic, tracked))
            baseline.update(sequence, (semantic, ids), (semantic, (pan % LABEL_DIVISOR).astype(np.uint32)))
    result, per_frame = scores.result(), baseline.result()
    assert result["track_frames"] > 300  # objects enough to cross and hide each other
    assert result["aq"] >= 0.95
    assert result["per_100_track_frames"] <= 1.0
    assert per_frame["aq"] < 0.5 and per_frame["per_100_track_frames"] > 10  # the scrambling is real


def box(shape: tuple[int, int], cls: int, x: int | None, y: int = 4, size: int = 4, instance: int = 1) -> np.ndarray:
    """Road with a size x size thing at (x, y); road alone where x is None."""
    pan = np.full(shape, ROAD * LABEL_DIVISOR, np.int64)
    if x is not None:
        pan[y : y + size, x : x + size] = cls * LABEL_DIVISOR + instance
    return pan


def ids_of(frames: list[np.ndarray], config: TrackConfig) -> list[int | None]:
    """The track id of the (single) thing of each frame, None where there is none."""
    out = []
    tracker = Tracker(DEMO, config)
    for pan in frames:
        mapping = tracker.update(pan)
        out.append(next(iter(mapping.values()), None))
    return out


def test_a_moving_object_keeps_its_id_through_a_gap_by_its_motion_and_not_past_max_gap() -> None:
    """A 4x4 car moving 2 pixels a frame, hidden for 3 frames: it reappears 8 pixels further,
    where its last mask only lands when moved by its velocity."""
    xs = [0, 2, 4, 6, 8, 10, None, None, None, 18, 20]
    frames = [box((12, 40), CAR, x) for x in xs]
    moved = ids_of(frames, TrackConfig(max_gap=3))
    assert moved == [FIRST_TRACK_ID] * 6 + [None] * 3 + [FIRST_TRACK_ID] * 2
    still = ids_of(frames, TrackConfig(max_gap=3, motion=False))
    assert still[:6] == [FIRST_TRACK_ID] * 6 and still[9] == FIRST_TRACK_ID + 1  # no overlap where it was
    too_long = ids_of(frames, TrackConfig(max_gap=2))
    assert too_long[9] == FIRST_TRACK_ID + 1 and too_long[10] == FIRST_TRACK_ID + 1


def test_ids_are_never_reused_and_classes_never_change() -> None:
    shape = (12, 40)
    frames = [box(shape, CAR, 5), box(shape, CAR, 5), box(shape, PERSON, 5), box(shape, CAR, None), box(shape, CAR, 5)]
    ids = ids_of(frames, TrackConfig(max_gap=0))
    # the person where the car was starts its own track; after the gap (max 0) the car is new again
    assert ids == [FIRST_TRACK_ID, FIRST_TRACK_ID, FIRST_TRACK_ID + 1, None, FIRST_TRACK_ID + 2]
    tracker = Tracker(DEMO, TrackConfig(max_gap=5))  # the car, unseen one frame, continues its track
    for pan in frames:
        tracker.update(pan)
    assert {r.track_id: DEMO.names[r.class_id] for r in tracker.records.values()} == {1000: "car", 1001: "person"}
    car = tracker.records[1000]
    assert (car.first_frame, car.last_frame, car.frames, car.mean_area) == (0, 4, 3, 16.0)


def test_two_crossing_objects_are_told_apart_by_overlap_and_the_assignment() -> None:
    """Two cars of one class pass side by side in opposite directions: each keeps its id."""
    shape = (16, 48)
    frames = []
    for t in range(8):
        pan = box(shape, CAR, 4 + 2 * t, y=2, instance=1)
        pan[9:13, 36 - 2 * t : 40 - 2 * t] = CAR * LABEL_DIVISOR + 2
        frames.append(pan)
    tracker = Tracker(DEMO, TrackConfig())
    first = tracker.update(frames[0])
    for pan in frames[1:]:
        assert tracker.update(pan) == first


def test_assignment_prefers_one_good_pair_to_two_poor_ones() -> None:
    """Rows: tracks, columns: segments; leaving a pair unmatched costs 0.75 (min overlap 0.25)."""
    cost = np.array([[0.3, 0.74], [0.74, np.inf]])
    rows, cols = assign(cost, 0.75)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0)]
    rows, cols = assign(np.array([[0.2, 0.9], [0.9, 0.2]]), 0.75)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1)]


def test_the_overlay_video_keeps_each_tracked_object_in_its_colour(sequences: Path, tmp_path: Path) -> None:
    """A demo sequence as a video, through spino segment's own reader, tracks and writer (with the
    ground-truth maps, ids scrambled, in place of a network); the encoded overlay video read back:
    each car is painted in its track's colour in every frame (many frames under one id), nearer
    to it than to any other track's."""
    av = pytest.importorskip("av")
    from spino.deploy.media import frames as decoded_frames
    from spino.deploy.media import sources
    from spino.deploy.segment_files import Tracks, Writer
    from spino.deploy.segmenter import Segmentation, segments_of
    from spino.encoding import semantic_of
    from spino.export import LABEL_FORMATS
    from spino.viz import track_colors

    names = sorted((sequences / "images" / "seq_0001").glob("*.png"))
    video = tmp_path / "in" / "drive.mp4"
    video.parent.mkdir()
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 192, 96, "yuv420p"
        stream.options = {"qscale": "2"}
        for path in names:
            for packet in stream.encode(av.VideoFrame.from_ndarray(read_image(path), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    labels = [(read_label(p), read_label(sequences / "instances" / "seq_0001" / p.name)) for p in
              sorted((sequences / "semantic" / "seq_0001").glob("*.png"))]  # fmt: skip
    panoptic = scrambled(labels, np.random.default_rng(1))
    out = tmp_path / "out"
    writer = Writer(out, LABEL_FORMATS.get("coco")(out, DEMO), DEMO, overlays=False, limit=4)
    tracks = Tracks(DEMO, TrackConfig(enabled=True), torch.device("cpu"), folders=False)
    track_maps, images = [], []
    for frame, pan in zip(decoded_frames(sources([str(video)])[0]), panoptic, strict=True):
        result = tracks.label(frame, Segmentation(pan.astype(np.uint32), semantic_of(pan), segments_of(pan, DEMO)))
        track_maps.append(result.track_map())
        images.append(frame.image.astype(np.float64))
        writer.submit(frame, result)
    writer.finish()
    with av.open(str(out / "overlay" / "drive.mp4")) as container:
        overlays = [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]
    assert len(overlays) == len(names)
    colours: dict[tuple[int, int], list[np.ndarray]] = {}  # (car, its track id) -> its colour in each frame
    for overlay, image, (semantic, ids), track_map in zip(overlays, images, labels, track_maps):
        painted = 2 * overlay - image  # the overlay is half image, half the segment's colour
        for car in np.unique(ids[semantic == CAR]):
            inside = ids == car
            core = inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
            if core.sum() >= 40:  # well inside, away from borders and codec bleeding
                track = int(np.bincount(track_map[inside]).argmax())
                colours.setdefault((int(car), track), []).append(painted[1:-1, 1:-1][core].mean(0))
    assert max(len(c) for c in colours.values()) >= 10  # a car followed through many frames under one id
    tracks = sorted({track for _, track in colours})
    palette = track_colors(np.array(tracks)).astype(np.float64)
    for (car, track), series in colours.items():
        # in every frame the car's colour is its track's, told apart from every other track's
        # (the codec's chroma subsampling bleeds into small cars: nearest, not equal)
        nearest = np.abs(np.array(series)[:, None, :] - palette[None]).sum(-1).argmin(1)
        assert (np.array(tracks)[nearest] == track).all(), (car, track, np.array(series).round())
