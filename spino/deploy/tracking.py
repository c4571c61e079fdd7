"""Identities that persist from frame to frame: each thing segment of a sequence gets a track id.

Association, frame by frame (the segments of a frame against the tracks seen in the last
``max_gap + 1`` frames):

1. each track's last mask is moved by its motion (its velocity, smoothed, times the frames since it
   was seen), so that a car crossing the view still overlaps itself; where it was also counts,
   whichever overlaps more (a jittering segment can throw a velocity off);
2. a (track, segment) pair's overlap is the mean of their mask IoU and of the share of the segment
   inside the moved mask (high for the visible part of an object partly hidden; IoU tells apart
   candidates inside one mask); pairs of one class with an overlap of at
   least ``min_overlap`` compete in a Hungarian assignment (scipy) where leaving a track and a
   segment unmatched costs as much as the weakest allowed pair;
3. matched segments continue their track; unmatched segments start new tracks, with ids never
   used before in the sequence; tracks unseen for more than ``max_gap`` frames end;
4. a track keeps its segment's mask, or, where the segment is much smaller than the moved mask
   (partly hidden), the moved mask shifted onto the visible part and joined with it: the whole
   object is looked for when it comes out. Its velocity follows its centroid while its area is
   steady, that shift while it is partly hidden.

Masks are compared as lists of pixel coordinates on a grid of about ``MATCH_PIXELS`` pixels (every
fourth pixel of every fourth row at 1024 x 512), in torch on the device the model runs on: one
gather and one bincount give every pair's intersection at once. Classes do not change along a
track (a segment of another class starts its own), so a track's class is the one it was born with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from spino.classes import ClassSet
from spino.config import section
from spino.encoding import LABEL_DIVISOR
from spino.errors import InputError

FIRST_TRACK_ID = 1000  # ids below are the stuff regions' in a tracked COCO panoptic map (class id + 1)
MOTION_SMOOTHING = 0.5  # weight of the newest displacement in a track's velocity
OCCLUDED_AREA = 0.7  # a segment under this share of its track's moved mask is taken as partly hidden
MATCH_PIXELS = 1 << 15  # masks are compared on a grid of about this many pixels (every 4th at 1024 x 512)
STEADY_AREA = (0.8, 1.25)  # area ratios within which the centroid's displacement is the object's motion
REALIGN_PIXELS = 4096  # mask pixels (all partly hidden tracks together) that score the realigning shifts


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

    def select(self, keep: torch.Tensor) -> _Live:
        """The tracks where ``keep`` (a bool per track), their pixels' owners renumbered."""
        rows = keep.nonzero().squeeze(1)
        remap = torch.full_like(self.ids, -1)
        remap[rows] = torch.arange(len(rows), device=self.ids.device)
        pixel = keep[self.owner]
        return _Live(
            self.ids[rows], self.classes[rows], self.seen[rows], self.velocity[rows], self.centroid[rows],
            self.pixels[pixel], remap[self.owner[pixel]],
        )  # fmt: skip


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
    shape: tuple[int, int]  # of the grid the masks are on

    @classmethod
    def of(cls, panoptic: torch.Tensor, thing: torch.Tensor, stride: int) -> _Segments:
        """Every thing segment of the map (a histogram of its values), and their masks on every
        ``stride``-th pixel of every ``stride``-th row: what the matching compares (IoUs hardly
        change on such a grid, and a 1024 x 512 frame costs a sixteenth). A segment too small to
        meet the grid has no pixels there: it starts a new track."""
        limit = len(thing) * LABEL_DIVISOR  # every value of a class; void and beyond share the last bin
        counts = torch.bincount(panoptic.reshape(-1).clamp(max=limit), minlength=limit + 1)
        values = counts[:limit].nonzero().squeeze(1)
        classes = values // LABEL_DIVISOR
        keep = thing[classes] & (values % LABEL_DIVISOR != 0)
        values, classes = values[keep], classes[keep]
        row = torch.zeros(len(counts), dtype=torch.int64, device=panoptic.device)
        row[values] = torch.arange(1, len(values) + 1, device=panoptic.device)
        grid = panoptic[::stride, ::stride]
        labels = row.index_select(0, grid.reshape(-1).clamp(max=limit))  # faster than row[...] on a CPU
        pixels = labels.nonzero().squeeze(1)
        owner = labels[pixels] - 1
        n = len(values)
        areas = torch.bincount(owner, minlength=n)
        width = grid.shape[-1]
        y, x = (pixels // width).float(), (pixels % width).float()
        centroid = torch.stack([torch.bincount(owner, y, n), torch.bincount(owner, x, n)], 1).float()
        centroid /= areas.clamp(min=1)[:, None]
        return cls(values, classes, labels, areas, centroid, pixels, owner, tuple(grid.shape))


@dataclass
class Tracker:
    """Track ids for the frames of one sequence, fed in order (``update``)."""

    class_set: ClassSet
    config: TrackConfig = field(default_factory=TrackConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    frame: int = -1
    next_id: int = FIRST_TRACK_ID
    records: dict[int, TrackRecord] = field(default_factory=dict)
    shape: tuple[int, int] | None = None  # of the sequence's frames (the first one's)
    stride: int = 1

    def __post_init__(self):
        self.thing = torch.as_tensor(self.class_set.thing_mask(), device=self.device)
        self.live = _Live.empty(self.device)

    def update(self, panoptic: np.ndarray | torch.Tensor) -> dict[int, int]:
        """The track id of each thing segment of the next frame: {panoptic value: track id}."""
        self.frame += 1
        if isinstance(panoptic, np.ndarray):  # spino's encoding fits int32: a uint32 map is viewed, not copied
            panoptic = torch.from_numpy(
                panoptic.view(np.int32) if panoptic.dtype == np.uint32 else panoptic.astype(np.int32)
            )
        pan = panoptic.to(self.device)
        if self.shape is None:
            self.shape = tuple(pan.shape)
            self.stride = max(1, int(math.sqrt(pan.numel() / MATCH_PIXELS)))
        if tuple(pan.shape) != self.shape:
            raise InputError(
                f"frame {self.frame} of a sequence is {pan.shape[1]} x {pan.shape[0]}, its first frame {self.shape[1]} x {self.shape[0]}"
            )
        segments = _Segments.of(pan, self.thing, self.stride)
        height, width = segments.shape
        live = self._alive()
        matched_row = torch.full((len(segments.values),), -1, dtype=torch.int64, device=self.device)
        moved = self._moved(live, height, width, self.config.motion)
        if len(live.ids) and len(segments.values):
            still = self._moved(live, height, width, motion=False) if self.config.motion else moved
            rows, cols = self._match(live, (moved, still), segments)
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
        return self.live if bool(keep.all()) else self.live.select(keep)

    def _moved(self, live: _Live, height: int, width: int, motion: bool = True) -> _Moved:
        """Each live track's last mask moved by its velocity over the frames since it was seen."""
        shift = torch.zeros_like(live.velocity, dtype=torch.int64)
        if motion:
            shift = (live.velocity * (self.frame - live.seen)[:, None]).round().to(torch.int64)
        pixels, inside = shifted(live.pixels, shift[live.owner, 0], shift[live.owner, 1], height, width)
        owner = live.owner[inside]
        area = torch.bincount(owner, minlength=len(live.ids))
        return _Moved(pixels[inside], owner, live.centroid + shift, area)

    def _match(
        self, live: _Live, masks: tuple[_Moved, _Moved], segments: _Segments
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(track rows, segment rows) of the Hungarian matching on 1 - overlap: the mean of the IoU
        and of the share of the segment inside the track's mask (high for the visible part of an
        object partly hidden; IoU tells apart the candidates inside one mask), with the track's
        mask moved by its motion or where it was, whichever overlaps more (a velocity thrown off
        by a jittering segment must not lose a track that stands still)."""
        n_tracks, n_segments = len(live.ids), len(segments.values)
        score = torch.zeros(n_tracks, n_segments, device=self.device)
        for mask in masks:
            hit = segments.labels[mask.pixels]
            counts = torch.bincount(mask.owner * (n_segments + 1) + hit, minlength=n_tracks * (n_segments + 1))
            inter = counts.reshape(n_tracks, n_segments + 1)[:, 1:].float()
            union = mask.area[:, None].float() + segments.areas[None, :].float() - inter
            covered = inter / segments.areas[None, :].clamp(min=1).float()
            score = torch.maximum(score, (inter / union.clamp(min=1) + covered) / 2)
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
        hidden_segments = occluded.nonzero().squeeze(1)
        hidden_rows = matched_row[hidden_segments]
        offset = self._realign(moved, segments, hidden_rows, hidden_segments)
        # velocities: 0 for a new track; the smoothed displacement of the centroid where the area is
        # steady, of the realigned mask where partly hidden; unchanged while the area changes otherwise
        velocity = torch.zeros(len(segments.values), 2, device=device)
        gap = (self.frame - live.seen[rows]).clamp(min=1)[:, None].float()
        position = segments.centroid.clone()
        position[hidden_segments] = moved.centroid[hidden_rows] + offset
        step = (position[seen] - live.centroid[rows]) / gap
        measured = ((visible >= STEADY_AREA[0]) & (visible <= STEADY_AREA[1])) | occluded[seen]
        smoothed = MOTION_SMOOTHING * step + (1 - MOTION_SMOOTHING) * live.velocity[rows]
        velocity[seen] = torch.where(measured[:, None], smoothed, live.velocity[rows])
        # masks: the unseen tracks' own; a partly hidden one's moved, realigned mask joined with the
        # part seen (each pixel once); the other segments' own
        unseen = torch.ones(len(live.ids), dtype=torch.bool, device=device)
        unseen[rows] = False
        kept = live.select(unseen)
        n = len(kept.ids)
        hidden_of_row = torch.full_like(live.ids, -1)
        hidden_of_row[hidden_rows] = torch.arange(len(hidden_rows), device=device)
        k = hidden_of_row[moved.owner]
        mine = k >= 0
        k = k[mine]
        realigned, inside = shifted(moved.pixels[mine], offset[k, 0].long(), offset[k, 1].long(), *segments.shape)
        hidden_pixel = occluded[segments.owner]
        owner = torch.cat([n + hidden_segments[k[inside]], n + segments.owner[hidden_pixel]])
        pixels = torch.cat([realigned[inside], segments.pixels[hidden_pixel]])
        union = torch.unique(owner * pixel_count + pixels)
        self.live = _Live(
            ids=torch.cat([kept.ids, track_of]),
            classes=torch.cat([kept.classes, segments.classes]),
            seen=torch.cat([kept.seen, torch.full_like(track_of, self.frame)]),
            velocity=torch.cat([kept.velocity, velocity]),
            centroid=torch.cat([kept.centroid, position]),
            pixels=torch.cat([kept.pixels, segments.pixels[~hidden_pixel], union % pixel_count]),
            owner=torch.cat([kept.owner, n + segments.owner[~hidden_pixel], union // pixel_count]),
        )

    def _realign(self, moved: _Moved, segments: _Segments, rows: torch.Tensor, segs: torch.Tensor) -> torch.Tensor:
        """(len(rows), 2) float: for tracks partly hidden, the shift of each moved mask (``rows``)
        that covers most of its segment's visible part (``segs``), searched on a 9 x 9 grid of
        shifts up to half the mask's size, each scored on an even sample of at most
        ``REALIGN_PIXELS`` mask pixels: where the object is, whatever part of it is hidden (its
        centroid would say otherwise). No shift wins ties."""
        if not len(rows):
            return torch.zeros(0, 2, device=self.device)
        height, width = segments.shape
        k_of_row = torch.full((len(moved.area),), -1, dtype=torch.int64, device=self.device)
        k_of_row[rows] = torch.arange(len(rows), device=self.device)
        k = k_of_row[moved.owner]
        mine = k >= 0
        k, pixels = k[mine], moved.pixels[mine]
        step = -(-len(pixels) // REALIGN_PIXELS)  # every step-th pixel: shifts score alike on a sample
        k, pixels = k[::step], pixels[::step]
        reach = (0.5 * moved.area[rows].float().sqrt()).ceil()  # half the mask's size, in grid pixels
        steps = torch.linspace(-1, 1, 9, device=self.device)
        fractions = torch.cartesian_prod(steps, steps)  # (81, 2), (0, 0) at 40
        shifts = (fractions[:, None, :] * reach[None, :, None]).round()  # (81, R, 2)
        landed, inside = shifted(pixels, shifts[:, k, 0].long(), shifts[:, k, 1].long(), height, width)
        labels = segments.labels[landed.clamp(0, height * width - 1)]
        hit = (inside & (labels == segs[k][None, :] + 1)).float()
        candidate = torch.arange(len(fractions), device=self.device)[:, None] * len(rows) + k[None, :]
        counts = torch.bincount(candidate.reshape(-1), hit.reshape(-1), len(fractions) * len(rows))
        counts = counts.reshape(len(fractions), len(rows))
        counts[len(fractions) // 2] += 0.5  # ties: no shift
        best = counts.argmax(0)
        return shifts[best, torch.arange(len(rows), device=self.device)]


def shifted(
    pixels: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of ``pixels`` (into a ``height`` x ``width`` grid) moved by (dy, dx), which
    broadcast against them, and which of them land inside the grid."""
    ys, xs = pixels // width + dy, pixels % width + dx
    return ys * width + xs, (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)


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
