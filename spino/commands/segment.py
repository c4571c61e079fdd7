"""`spino segment`: a trained model on new images, folders, globs and videos.

Outputs mirror the input tree under --out: COCO panoptic (``panoptic/<name>.png`` + ``panoptic.json``)
or Cityscapes gtFine PNGs, overlays with --overlay, and for each video its frames and an overlay
video. With --track (videos) or --sequence (folders of frames), each thing keeps a track id from
frame to frame: the COCO maps' segment ids, ``tracks.csv``, overlays coloured by track.
``segment.json`` is written last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.commands._options import add_device, positive_int
from spino.deploy.tracking import TrackConfig
from spino.export import LABEL_FORMATS

HELP = "segment new images and videos with a trained model (checkpoint, bundle or ONNX)"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model.pt, a .safetensors bundle or an .onnx file (spino export-model)")
    p.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), globs, video files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--format", choices=list(LABEL_FORMATS), default="coco")
    p.add_argument("--overlay", action="store_true", help="also write overlay/<name>.png for each image")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=int, default=1, help="DataLoader processes reading images (0: none)")
    p.add_argument("--keep-going", action="store_true", help="skip unreadable inputs, list them at the end, exit 1")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    defaults = TrackConfig()  # config `segment.track`: its defaults come from the schema
    p.add_argument(
        "--track", action="store_true", help="give the things of videos track ids that persist from frame to frame"
    )
    p.add_argument(
        "--sequence",
        action="store_true",
        help="the images of each folder are the frames of one sequence, in name order (tracked; implies --track)",
    )
    p.add_argument("--max-gap", type=int, default=defaults.max_gap, help="frames a track may go unseen and continue")
    p.add_argument("--min-overlap", type=float, default=defaults.min_overlap, help="least overlap to continue a track")
    p.add_argument("--no-motion", action="store_true", help="match tracks' last masks where they were, not moved")
    add_device(p)


def run(args: argparse.Namespace) -> None:
    from spino.deploy.segment_files import SegmentOptions, segment_files
    from spino.deploy.segmenter import Segmenter

    segmenter = Segmenter.from_checkpoint(args.model, args.device)
    track = TrackConfig(
        enabled=args.track or args.sequence,
        sequence=args.sequence,
        max_gap=args.max_gap,
        min_overlap=args.min_overlap,
        motion=not args.no_motion,
    )
    options = SegmentOptions(
        args.format,
        args.overlay,
        args.batch_size,
        args.workers,
        args.keep_going,
        args.overwrite,
        str(args.model),
        track,
    )
    summary = segment_files(segmenter, args.inputs, args.out, options)
    print(f"{args.out}: {summary['frames']} images segmented ({args.format})")
