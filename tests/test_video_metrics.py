"""STQ, VPQ and identity switches: hand-counted values on small constructed sequences (an id switch,
a missed frame, a false track), and STQ against the paper's formula written out on random sequences."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from spino.classes import DEMO, IGNORE
from spino.metrics import STQ, VPQ, IdSwitches, VideoScores
from spino.metrics.video import window_panoptic

ROAD, CAR = 0, 6  # stuff, thing of the demo class set


def car_sequence() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two 4x6 frames of road with one car (track 7), 2x2 pixels, moving two columns right."""
    frames = []
    for left in (0, 2):
        semantic = np.full((4, 6), ROAD, np.uint8)
        ids = np.zeros((4, 6), np.uint32)
        semantic[1:3, left : left + 2] = CAR
        ids[1:3, left : left + 2] = 7
        frames.append((semantic, ids))
    return frames


def scores(gt, pred, windows=(1, 2)) -> dict:
    metric = VideoScores(DEMO, windows)
    for g, p in zip(gt, pred):
        metric.update("seq", g, p)
    return metric.result()


def test_an_id_switch_halves_association_and_breaks_the_two_frame_tube() -> None:
    gt = car_sequence()
    pred = [(s.copy(), np.where(i > 0, n + 1, 0).astype(np.uint32)) for n, (s, i) in enumerate(gt)]  # ids 1, then 2
    r = scores(gt, pred)
    # the 8-pixel tube meets two 4-pixel tubes, each IoU 4/8: (4 * 0.5 + 4 * 0.5) / 8
    assert r["aq"] == pytest.approx(0.5) and r["sq"] == pytest.approx(1.0)
    assert r["stq"] == pytest.approx(math.sqrt(0.5))
    # one frame at a time every segment matches; over both frames the car (IoU 4/8, not > 0.5) is
    # one false negative and two false positives: PQ 0 for car, 1 for road
    assert r["per_window"]["1"]["vpq"] == pytest.approx(1.0)
    assert r["per_window"]["2"]["vpq"] == pytest.approx(0.5)
    assert r["per_window"]["2"]["things"] == pytest.approx(0.0)
    assert r["vpq"] == pytest.approx(0.75)
    assert (r["id_switches"], r["track_frames"], r["per_100_track_frames"]) == (1, 2, 50.0)


def test_a_missed_frame_costs_association_and_segmentation() -> None:
    gt = car_sequence()
    missed = (np.full((4, 6), ROAD, np.uint8), np.zeros((4, 6), np.uint32))
    r = scores(gt, [gt[0], missed])
    # the predicted tube is the first frame's 4 pixels: IoU 4/8, so 4 * 0.5 / 8
    assert r["aq"] == pytest.approx(0.25)
    # road: 40 of 44 predicted road pixels; car: 4 of 8
    assert r["sq"] == pytest.approx((40 / 44 + 4 / 8) / 2)
    assert r["stq"] == pytest.approx(math.sqrt(0.25 * (40 / 44 + 0.5) / 2))
    assert r["id_switches"] == 0


def test_a_false_track_costs_segmentation_and_vpq_but_not_association() -> None:
    gt = car_sequence()
    semantic, ids = gt[1][0].copy(), gt[1][1].copy()
    semantic[3, 4:6], ids[3, 4:6] = CAR, 9  # a 2-pixel car where there is road
    r = scores(gt, [gt[0], (semantic, ids)])
    assert r["aq"] == pytest.approx(1.0)
    assert r["sq"] == pytest.approx((38 / 40 + 8 / 10) / 2)
    # one frame: road IoU 1 and 18/20 (tp 2), car tp 2 + fp 1 -> (1.9 / 2, 2 / 2.5)
    assert r["per_window"]["1"]["vpq"] == pytest.approx((1.9 / 2 + 2 / 2.5) / 2)
    # both frames: road IoU 38/40; car tp 1 + fp 1 -> 1 / 1.5
    assert r["per_window"]["2"]["vpq"] == pytest.approx((38 / 40 + 1 / 1.5) / 2)


def test_crowd_and_void_follow_the_reference_rules() -> None:
    """Predicted things on ground-truth crowd count nowhere in AQ; on void they count in |p|."""
    gt = car_sequence()
    semantic, ids = gt[0][0].copy(), gt[0][1].copy()
    semantic[0, 4:6] = CAR  # crowd: car without id
    semantic[3, 4:6] = IGNORE
    pred_semantic, pred_ids = gt[0][0].copy(), gt[0][1].copy()
    pred_semantic[0, 4:6], pred_ids[0, 4:6] = CAR, 7  # on the crowd region: ignored
    one_frame = STQ(DEMO)
    one_frame.update("s", (semantic, ids), (pred_semantic, pred_ids))
    assert one_frame.result()["aq"] == pytest.approx(1.0)
    pred_semantic[3, 4:6], pred_ids[3, 4:6] = CAR, 7  # on void: the predicted tube grows to 6
    on_void = STQ(DEMO)
    on_void.update("s", (semantic, ids), (pred_semantic, pred_ids))
    assert on_void.result()["aq"] == pytest.approx(4 / 6)


def test_window_panoptic_numbers_tubes_across_frames() -> None:
    gt = car_sequence()
    pan = window_panoptic(gt, DEMO)
    assert pan.shape == (4, 12)
    car = np.concatenate([semantic for semantic, _ in gt], axis=1) == CAR
    assert np.unique(pan[car]).tolist() == [CAR * 1000 + 1] and np.unique(pan[~car]).tolist() == [ROAD * 1000]
    switched = VPQ(DEMO, (2,))
    switched.update("a", gt[0], gt[0])
    switched.update("b", gt[1], gt[1])  # another sequence: no window spans the two
    assert switched.result()["per_window"] == {}


def reference_stq(gt_sequences: list, pred_sequences: list) -> float:
    """STQ as Weber et al. define it, written out over pixel sets: AQ = 1/|gt tubes| sum_g 1/|g|
    sum_p |p & g| IoU(p, g); SQ = mIoU; crowd pixels out of both tube sets."""
    thing = DEMO.thing_mask()
    tubes, association = 0, 0.0
    confusion = np.zeros((DEMO.num_classes, DEMO.num_classes + 1), np.int64)
    for gt_frames, pred_frames in zip(gt_sequences, pred_sequences):
        g_tubes, p_tubes = defaultdict(set), defaultdict(set)
        for t, ((gs, gi), (ps, pi)) in enumerate(zip(gt_frames, pred_frames)):
            for y, x in np.ndindex(gs.shape):
                g_thing = gs[y, x] != IGNORE and thing[gs[y, x]]
                crowd = g_thing and gi[y, x] == 0
                if g_thing and not crowd:
                    g_tubes[(gs[y, x], gi[y, x])].add((t, y, x))
                if ps[y, x] != IGNORE and thing[ps[y, x]] and not crowd:
                    p_tubes[(ps[y, x], pi[y, x])].add((t, y, x))
                if gs[y, x] != IGNORE:
                    confusion[gs[y, x], DEMO.num_classes if ps[y, x] == IGNORE else ps[y, x]] += 1
        for g in g_tubes.values():
            tubes += 1
            association += sum(len(g & p) ** 2 / len(g | p) for p in p_tubes.values()) / len(g)
    tp = np.diag(confusion[:, : DEMO.num_classes])
    union = confusion.sum(1) + confusion[:, : DEMO.num_classes].sum(0) - tp
    iou = [tp[c] / union[c] for c in range(DEMO.num_classes) if union[c]]
    return math.sqrt(association / tubes * float(np.mean(iou)))


def random_frame(rng: np.random.Generator, void: bool) -> tuple[np.ndarray, np.ndarray]:
    semantic = rng.choice([ROAD, 4, 5, CAR], size=(5, 6)).astype(np.uint8)
    if void:
        semantic[rng.random((5, 6)) < 0.1] = IGNORE
    return semantic, rng.integers(0, 4, size=(5, 6)).astype(np.uint32)


@pytest.mark.parametrize("seed", range(5))
def test_stq_equals_the_papers_formula_on_random_sequences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=3)
    gt = [[random_frame(rng, True) for _ in range(n)] for n in lengths]
    pred = [[random_frame(rng, False) for _ in range(n)] for n in lengths]
    metric = STQ(DEMO)
    for s, (g_frames, p_frames) in enumerate(zip(gt, pred)):
        for g, p in zip(g_frames, p_frames):
            metric.update(f"s{s}", g, p)
    assert metric.result()["stq"] == pytest.approx(reference_stq(gt, pred), rel=1e-12)


def test_id_switches_count_changes_of_the_matched_prediction_only() -> None:
    gt = car_sequence() * 2  # four frames of one track
    ids = [1, 1, 2, 2]
    pred = [(s, np.where(i > 0, n, 0).astype(np.uint32)) for (s, i), n in zip(gt, ids)]
    unmatched = (gt[1][0].copy(), np.zeros_like(gt[1][1]))
    unmatched[0][unmatched[0] == CAR] = ROAD  # frame 1 missed: no match, no switch
    counter = IdSwitches(DEMO)
    for g, p in zip(gt, [pred[0], unmatched, pred[2], pred[3]]):
        counter.update("seq", g, p)
    assert counter.result()["id_switches"] == 1 and counter.result()["track_frames"] == 4
