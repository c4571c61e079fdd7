"""`spino evaluate`: PQ/SQ/RQ and mIoU against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from spino.classes import load_class_set
from spino.evaluate import MATCHINGS, LabelSource, NothingToScoreError, score, scored_ids
from spino.metrics import format_summary, write_not_scored, write_scores

HELP = "PQ/SQ/RQ and mIoU of a store or gtFine folder against ground truth"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prediction", type=Path, help="label store or folder of *_gtFine_instanceIds.png")
    p.add_argument("--gt", required=True, type=Path, help="ground-truth label store (or gtFine folder with --classes)")
    p.add_argument("--classes", default=None, help="class set when --gt is a folder")
    p.add_argument("--manifest", type=Path, help="the run's manifest (for --exclude-annotated and --splits)")
    p.add_argument("--exclude-annotated", action="store_true", help="leave out the manifest's annotated images")
    p.add_argument("--splits", nargs="+", help="score only images of these splits (default: all)")
    p.add_argument(
        "--matching",
        default="none",
        choices=MATCHINGS,
        help="hungarian: the prediction's ids are clusters (label-free labels), matched one-to-one to the classes first",
    )
    p.add_argument(
        "--none-ok",
        action="store_true",
        help="when no image is left to score, write scores that say why instead of failing (few labels)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="score tracked sequences (STQ, VPQ, id switches): --gt a video folder layout, the prediction "
        "spino segment --track's folder (docs/deploy.md)",
    )
    p.add_argument(
        "--windows", type=int, nargs="+", default=[1, 5, 10, 15], help="VPQ window sizes (frames) with --video"
    )
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("--csv", required=True, type=Path)


def run(args: argparse.Namespace) -> None:
    if args.video:
        return run_video(args)
    gt = LabelSource(args.gt, load_class_set(args.classes) if args.classes else None)
    pred = LabelSource(args.prediction, gt.class_set)
    try:
        ids = scored_ids(pred, gt, args.manifest, args.exclude_annotated, args.splits)
    except NothingToScoreError as err:
        if not args.none_ok:
            raise
        write_not_scored(str(err), args.json, args.csv)
        print(f"not scored: {err}")
        return
    stats, mapping = score(pred, gt, ids, args.matching)
    summary = write_scores(stats, gt.class_set, args.json, args.csv, mapping)
    print(f"{args.prediction}: {stats.images} images  {format_summary(summary)}")


def run_video(args: argparse.Namespace) -> None:
    from spino.data.video import VideoLabels
    from spino.evaluate import score_video
    from spino.metrics import format_video_summary, write_video_scores

    class_set = load_class_set(args.classes or args.gt / "classes.yaml")
    result = score_video(VideoLabels(args.prediction, class_set), VideoLabels(args.gt, class_set), tuple(args.windows))
    write_video_scores(result, args.json, args.csv)
    print(
        f"{args.prediction}: {result['sequences']} sequences, {result['frames']} frames  {format_video_summary(result)}"
    )
