"""What ``spino segment`` reads: image files, folders, globs and videos, as a stream of frames.

Every input becomes one or more ``Source`` s with the name its outputs get: its path below the
folder or glob it was found in, without the suffix, so that the outputs mirror the input tree.
Videos are decoded with PyAV (``pip install 'spino[video]'``), one frame at a time.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from spino.data.io import read_image
from spino.errors import InputError, MissingFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class Source:
    path: Path
    name: str  # the outputs' relative name, e.g. "city/frame_0001" (POSIX separators, no suffix)

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Frame:
    """One image or video frame to segment; ``error`` (the one-line reason) where it could not be read."""

    source: Source
    name: str  # output name: the source's, or "<video>/<frame number, 6 digits>"
    last: bool  # the last frame of its source
    image: np.ndarray | None
    error: str | None = None


def is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def _named(paths: list[Path], base: Path) -> list[Source]:
    return [Source(p, str(PurePosixPath(p.relative_to(base).with_suffix("").as_posix()))) for p in paths]


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return Path(*fixed) if fixed else Path(".")


def sources(inputs: list[str]) -> list[Source]:
    """The images and videos named by ``inputs`` (files, folders searched recursively, globs), each
    folder's and glob's in sorted order; raises naming an input that names none, or two inputs whose
    outputs would share a name."""
    found: list[Source] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            media = sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
            if not media:
                raise MissingFileError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos found")
            found += _named(media, path)
        elif path.is_file():
            if not is_media(path):
                raise InputError(
                    f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}) or video ({', '.join(VIDEO_SUFFIXES)})"
                )
            found += _named([path], path.parent)
        elif glob.has_magic(spec):
            media = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_media(Path(p)) and Path(p).is_file())
            if not media:
                raise MissingFileError(f"{spec}: matches no image or video")
            found += _named(media, _glob_base(spec))
        else:
            raise MissingFileError(f"{path}: not found")
    seen: dict[str, Path] = {}
    for source in found:
        if source.name in seen:
            raise InputError(f"{seen[source.name]} and {source.path}: both would be written as {source.name!r}")
        seen[source.name] = source.path
    return found


def frames(source: Source) -> Iterator[Frame]:
    """The frames of one source: an image is one frame; a video, each decoded frame in order. A
    source that cannot be read gives one frame with its error instead."""
    if not source.is_video:
        try:
            yield Frame(source, source.name, True, read_image(source.path))
        except (InputError, OSError) as err:
            yield Frame(source, source.name, True, None, str(err))
        return
    try:
        import av
    except ImportError:
        yield Frame(
            source, source.name, True, None, f"{source.path}: reading videos needs PyAV: pip install 'spino[video]'"
        )
        return
    try:
        with av.open(str(source.path)) as container:
            previous = None
            for number, frame in enumerate(container.decode(video=0)):
                if previous is not None:
                    yield previous
                previous = Frame(source, f"{source.name}/{number:06d}", False, frame.to_ndarray(format="rgb24"))
            if previous is None:
                raise InputError("no video frames")
            previous.last = True
            yield previous
    except (av.FFmpegError, InputError, OSError) as err:
        yield Frame(source, source.name, True, None, f"{source.path}: cannot be decoded as a video ({err})")


def video_info(path: Path) -> tuple[int, float]:
    """(frames the video declares, 0 where it does not; frames per second, 25 where it does not say)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames, float(stream.average_rate) if stream.average_rate else 25.0
