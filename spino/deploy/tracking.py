"""Identities that persist from frame to frame: each thing segment of a sequence gets a track id.

Association, frame by frame (the segments of a frame against the tracks seen in the last
``max_gap + 1`` frames):

1. each track's last mask is moved by its motion (its centroid's velocity, smoothed, times the
   frames since it was seen), so that a car crossing the view still overlaps itself;
2. the cost of a (track, segment) pair is 1 - their overlap (the mean of mask IoU and of the share
   of the segment inside the moved mask), allowed only within one class and at an overlap of at
   least ``min_overlap``; the Hungarian assignment (scipy) takes the cheapest one-to-one matching;
3. matched segments continue their track; unmatched segments start new tracks, with ids never
   used before in the sequence; tracks unseen for more than ``max_gap`` frames end.

The masks are compared as lists of pixel coordinates, in torch on the device the model runs on:
one gather and one bincount give every pair's intersection at once. Classes do not change along a
track (a segment of another class starts its own), so a track's class is the one it was born with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from spino.classes import IGNORE, ClassSet
from spino.config import section
from spino.encoding import LABEL_DIVISOR

FIRST_TRACK_ID = 1000  # ids below are the stuff regions' in a tracked COCO panoptic map (class id + 1)
MOTION_SMOOTHING = 0.5  # weight of the newest displacement in a track's velocity
OCCLUDED_AREA = 0.7  # a segment under this share of its track's moved mask is taken as partly hidden
STEADY_AREA = (0.8, 1.25)  # area ratios within which the centroid's displacement is the object's motion


@section("segment.track")
class TrackConfig:
    enabled: bool
    sequence: bool
    max_gap: int
    min_overlap: float
    motion: bool


@dataclass
class TrackRecord:
    """What ``tracks.csv`` says of one track."""

    track_id: int
    class_id: int
    first_frame: int
    last_frame: int
    frames: int = 1
    total_area: int = 0

    @property
    def mean_area(self) -> float:
        return self.total_area / self.frames


@dataclass
class _Live:
    """The tracks that may still be matched: their last masks as pixel coordinates (``owner``: the
    row of each pixel's track), their classes, velocities and when they were seen."""

    ids: torch.Tensor  # (T,) int64
    classes: torch.Tensor  # (T,) int64
    seen: torch.Tensor  # (T,) int64 frame index
    velocity: torch.Tensor  # (T, 2) float (dy, dx) pixels per frame
    centroid: torch.Tensor  # (T, 2) float
    pixels: torch.Tensor  # (N,) int64 flat indices of the last masks
    owner: torch.Tensor  # (N,) int64 row in the tables above

    @classmethod
    def empty(cls, device: torch.device) -> _Live:
        i = torch.zeros(0, dtype=torch.int64, device=device)
        f = torch.zeros(0, 2, dtype=torch.float32, device=device)
        return cls(i, i, i, f, f, i, i)


@dataclass
class _Moved:
    """The live tracks' masks moved to the current frame (pixels outside it dropped)."""

    pixels: torch.Tensor  # (M,) flat indices
    owner: torch.Tensor  # (M,) track row
    centroid: torch.Tensor  # (T, 2)
    area: torch.Tensor  # (T,) pixels inside the frame


@dataclass
class _Segments:
    """The thing segments of one frame: their panoptic values, classes, pixels and centroids."""

    values: torch.Tensor  # (S,) panoptic value of each segment
    classes: torch.Tensor  # (S,)
    labels: torch.Tensor  # (H*W,) 0 where no thing segment, else 1 + its row
    areas: torch.Tensor  # (S,)
    centroid: torch.Tensor  # (S, 2)
    pixels: torch.Tensor  # flat indices of every segment pixel
    owner: torch.Tensor  # its segment row

    @classmethod
    def of(cls, panoptic: torch.Tensor, thing: torch.Tensor) -> _Segments:
        flat = panoptic.reshape(-1).to(torch.int64)
        cls_map = flat // LABEL_DIVISOR
        is_thing = (cls_map != IGNORE) & thing[cls_map.clamp(max=len(thing) - 1)] & (flat % LABEL_DIVISOR != 0)
        pixels = is_thing.nonzero().squeeze(1)
        values, owner = torch.unique(flat[pixels], return_inverse=True)
        labels = torch.zeros_like(flat)
        labels[pixels] = owner + 1
        areas = torch.bincount(owner, minlength=len(values))
        width = panoptic.shape[-1]
        yx = torch.stack([pixels // width, pixels % width], 1).float()
        centroid = torch.zeros(len(values), 2, device=flat.device).index_add_(0, owner, yx)
        centroid /= areas.clamp(min=1)[:, None]
        return cls(values, values // LABEL_DIVISOR, labels, areas, centroid, pixels, owner)


@dataclass
class Tracker:
    """Track ids for the frames of one sequence, fed in order (``update``)."""

    class_set: ClassSet
    config: TrackConfig = field(default_factory=TrackConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    frame: int = -1
    next_id: int = FIRST_TRACK_ID
    records: dict[int, TrackRecord] = field(default_factory=dict)

    def __post_init__(self):
        self.thing = torch.as_tensor(self.class_set.thing_mask(), device=self.device)
        self.live = _Live.empty(self.device)

    def update(self, panoptic: np.ndarray | torch.Tensor) -> dict[int, int]:
        """The track id of each thing segment of the next frame: {panoptic value: track id}."""
        self.frame += 1
        pan = torch.as_tensor(np.asarray(panoptic, np.int64) if isinstance(panoptic, np.ndarray) else panoptic)
        pan = pan.to(self.device)
        height, width = pan.shape
        segments = _Segments.of(pan, self.thing)
        live = self._alive()
        matched_row = torch.full((len(segments.values),), -1, dtype=torch.int64, device=self.device)
        moved = self._moved(live, height, width)
        if len(live.ids) and len(segments.values):
            rows, cols = self._match(live, moved, segments)
            matched_row[cols] = rows
        track_of = torch.full_like(matched_row, -1)
        continued = matched_row >= 0
        track_of[continued] = live.ids[matched_row[continued]]
        new = (track_of < 0).nonzero().squeeze(1)
        track_of[new] = torch.arange(self.next_id, self.next_id + len(new), device=self.device)
        self.next_id += len(new)
        self._advance(live, moved, segments, track_of, matched_row, height * width)
        ids = track_of.tolist()
        for track, cls, area in zip(ids, segments.classes.tolist(), segments.areas.tolist()):
            record = self.records.get(track)
            if record is None:
                self.records[track] = TrackRecord(track, cls, self.frame, self.frame, 1, area)
            else:
                record.last_frame = self.frame
                record.frames += 1
                record.total_area += area
        return dict(zip(segments.values.tolist(), ids))

    def _alive(self) -> _Live:
        """The live tracks, those unseen for more than max_gap frames dropped."""
        keep = self.frame - self.live.seen <= self.config.max_gap + 1
        if bool(keep.all()):
            return self.live
        rows = keep.nonzero().squeeze(1)
        remap = torch.full_like(self.live.ids, -1)
        remap[rows] = torch.arange(len(rows), device=self.device)
        pixel_keep = keep[self.live.owner]
        old = self.live
        return _Live(
            old.ids[rows], old.classes[rows], old.seen[rows], old.velocity[rows], old.centroid[rows],
            old.pixels[pixel_keep], remap[old.owner[pixel_keep]],
        )  # fmt: skip

    def _moved(self, live: _Live, height: int, width: int) -> _Moved:
        """Each live track's last mask moved by its velocity over the frames since it was seen."""
        shift = torch.zeros_like(live.velocity, dtype=torch.int64)
        if self.config.motion:
            shift = (live.velocity * (self.frame - live.seen)[:, None]).round().to(torch.int64)
        ys = live.pixels // width + shift[live.owner, 0]
        xs = live.pixels % width + shift[live.owner, 1]
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        owner = live.owner[inside]
        area = torch.bincount(owner, minlength=len(live.ids))
        return _Moved((ys * width + xs)[inside], owner, live.centroid + shift, area)

    def _match(self, live: _Live, moved: _Moved, segments: _Segments) -> tuple[torch.Tensor, torch.Tensor]:
        """(track rows, segment rows) of the Hungarian matching on 1 - overlap of the moved masks: the
        mean of their IoU and of the share of the segment inside the track's mask (high for the
        visible part of an object partly hidden; IoU tells apart the candidates inside one mask)."""
        n_tracks, n_segments = len(live.ids), len(segments.values)
        hit = segments.labels[moved.pixels]
        counts = torch.bincount(moved.owner * (n_segments + 1) + hit, minlength=n_tracks * (n_segments + 1))
        inter = counts.reshape(n_tracks, n_segments + 1)[:, 1:].float()
        union = moved.area[:, None].float() + segments.areas[None, :].float() - inter
        covered = inter / segments.areas[None, :].clamp(min=1).float()
        score = (inter / union.clamp(min=1) + covered) / 2
        allowed = (live.classes[:, None] == segments.classes[None, :]) & (score >= self.config.min_overlap)
        rows, cols = assign(torch.where(allowed, 1 - score, torch.inf).cpu().numpy(), 1 - self.config.min_overlap)
        return torch.as_tensor(rows, device=self.device), torch.as_tensor(cols, device=self.device)

    def _advance(
        self,
        live: _Live,
        moved: _Moved,
        segments: _Segments,
        track_of: torch.Tensor,
        matched_row: torch.Tensor,
        pixel_count: int,
    ) -> None:
        """The live tracks after this frame. A track seen now takes its segment's mask, or, where
        the segment is much smaller than the moved mask (partly hidden), the union of the two: the
        whole object is looked for when it comes out, anchored where a part of it was seen. Its
        velocity follows its centroid only while its area is steady (a centroid also moves when a
        part is hidden or uncovered). Tracks not seen keep their masks, to be moved further."""
        device = self.device
        seen = matched_row >= 0
        rows = matched_row[seen]
        visible = segments.areas[seen].float() / moved.area[rows].clamp(min=1).float()
        occluded = torch.zeros_like(seen)
        occluded[seen] = visible < OCCLUDED_AREA
        # velocities: 0 for a new track; smoothed displacement of the centroid where the area is steady
        velocity = torch.zeros(len(segments.values), 2, device=device)
        gap = (self.frame - live.seen[rows]).clamp(min=1)[:, None].float()
        step = (segments.centroid[seen] - live.centroid[rows]) / gap
        steady = ((visible >= STEADY_AREA[0]) & (visible <= STEADY_AREA[1]))[:, None]
        smoothed = MOTION_SMOOTHING * step + (1 - MOTION_SMOOTHING) * live.velocity[rows]
        velocity[seen] = torch.where(steady, smoothed, live.velocity[rows])
        centroid = segments.centroid.clone()
        centroid[occluded] = moved.centroid[matched_row[occluded]]
        # masks: the unseen tracks' own, the occluded ones' moved masks, the other segments'
        unseen_row = torch.ones(len(live.ids), dtype=torch.bool, device=device)
        unseen_row[rows] = False
        unseen = unseen_row.nonzero().squeeze(1)
        remap = torch.full_like(live.ids, -1)
        remap[unseen] = torch.arange(len(unseen), device=device)
        segment_of_row = torch.full_like(live.ids, -1)
        segment_of_row[rows] = seen.nonzero().squeeze(1)
        occluded_row = torch.zeros_like(unseen_row)
        occluded_row[matched_row[occluded]] = True
        keep_old = unseen_row[live.owner]
        keep_moved = occluded_row[moved.owner]
        n = len(unseen)
        # a partly hidden track's mask: its moved mask and the segment seen, each pixel once
        hidden_pixel = occluded[segments.owner]
        owner = torch.cat([n + segment_of_row[moved.owner[keep_moved]], n + segments.owner[hidden_pixel]])
        union = torch.unique(owner * pixel_count + torch.cat([moved.pixels[keep_moved], segments.pixels[hidden_pixel]]))
        self.live = _Live(
            ids=torch.cat([live.ids[unseen], track_of]),
            classes=torch.cat([live.classes[unseen], segments.classes]),
            seen=torch.cat([live.seen[unseen], torch.full_like(track_of, self.frame)]),
            velocity=torch.cat([live.velocity[unseen], velocity]),
            centroid=torch.cat([live.centroid[unseen], centroid]),
            pixels=torch.cat([live.pixels[keep_old], segments.pixels[~hidden_pixel], union % pixel_count]),
            owner=torch.cat([remap[live.owner[keep_old]], n + segments.owner[~hidden_pixel], union // pixel_count]),
        )


def assign(cost: np.ndarray, unmatched: float) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of least total cost (rows, columns of the matched pairs), where
    leaving a row and a column unmatched costs ``unmatched`` (each half): a pair is matched only if
    that is cheaper, and a forbidden pair (inf) never. Without that option the Hungarian assignment
    would rather take two mediocre pairs than one good pair and two left over."""
    n_rows, n_cols = cost.shape
    forbidden = 2 * unmatched + 1  # dearer than leaving both unmatched
    full = np.full((n_rows + n_cols, n_cols + n_rows), forbidden)
    full[:n_rows, :n_cols] = np.where(np.isfinite(cost), cost, forbidden)
    full[np.arange(n_rows), n_cols + np.arange(n_rows)] = unmatched / 2
    full[n_rows + np.arange(n_cols), np.arange(n_cols)] = unmatched / 2
    full[n_rows:, n_cols:] = 0
    rows, cols = linear_sum_assignment(full)
    pair = (rows < n_rows) & (cols < n_cols)
    pair[pair] = full[rows[pair], cols[pair]] < forbidden
    return rows[pair], cols[pair]
