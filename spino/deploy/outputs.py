"""What ``spino segment`` writes for each image or frame, named after its input: the labels in a
format of spino.export.LABEL_FORMATS (the writers ``spino export`` uses), and overlays.

- ``coco``: ``panoptic/<name>.png`` (COCO panoptic RGB ids) and ``panoptic.json`` (segments_info,
  the model's classes as categories), written last: a folder without it is incomplete.
- ``gtfine``: ``<name>_gtFine_labelIds.png``, ``_instanceIds.png`` and ``_labelTrainIds.png``
  (a trailing ``_leftImg8bit`` of the name dropped, as Cityscapes names its labels), which
  ``spino evaluate`` scores.
- ``overlay/<name>.png`` with ``--overlay``; a video's frames also as ``overlay/<video>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.data.io import atomic_path, write_png
from spino.errors import with_path
from spino.viz import overlay, with_legend


class OverlayVideo:
    """An overlay video being encoded frame by frame (H.264 where PyAV has it, else MPEG-4 Part 2),
    at the input video's frame rate; renamed into place when closed."""

    def __init__(self, path: Path, rate: float):
        import av

        self.path = path
        self._atomic = atomic_path(path)
        tmp = self._atomic.__enter__()
        self.container = av.open(str(tmp), mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=round(rate))
        self.stream.pix_fmt = "yuv420p"
        self.started = False

    def add(self, rgb: np.ndarray) -> None:
        import av

        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # yuv420p needs even sizes
        if not self.started:
            self.stream.height, self.stream.width = h, w
            self.started = True
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        except OSError as err:
            raise with_path(err, self.path) from err
        self._atomic.__exit__(None, None, None)


def write_overlay(
    out: Path,
    name: str,
    image: np.ndarray,
    panoptic: np.ndarray,
    class_set: ClassSet,
    tracks: np.ndarray | None = None,
) -> None:
    picture = overlay(image, panoptic, class_set, tracks=tracks)
    write_png(out / "overlay" / f"{name}.png", with_legend(picture, panoptic, class_set))
