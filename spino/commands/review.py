"""`spino review`: a review round: the unlabelled images a correction would help most, pre-drawn for
CVAT and Label Studio (spino.review chooses, spino.prelabels writes the tools' formats)."""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import numpy as np

from spino.data.io import atomic_folder, resize_nearest, write_csv, write_png
from spino.data.manifest import read_manifest
from spino.errors import InputError
from spino.features import read_features
from spino.prelabels import PreLabel, write_cvat_coco, write_label_studio
from spino.review import Choice, candidates, choose, reviewable
from spino.store import LabelStore
from spino.viz import legend, overlay

HELP = "a review round: the k unlabelled images the teacher doubts most, pre-drawn for CVAT and Label Studio"
GROUP = "tool"
TERMS = ("doubt", "margin", "disagreement")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="the run's manifest (which images are unlabelled)")
    p.add_argument("--pseudo-labels", required=True, type=Path, help="the run's pseudo-label store (with confidences)")
    p.add_argument("--predictions", type=Path, help="the panoptic model's predictions, where the run has them")
    p.add_argument("--features", type=Path, help="image descriptors (spino features): diversity among the chosen")
    p.add_argument(
        "--scored-splits",
        nargs="*",
        default=[],
        metavar="SPLIT",
        help="splits whose labelled images score the run: never chosen (they would leave the scored set)",
    )
    p.add_argument("--k", type=int, default=10, help="images to choose")
    p.add_argument("--round", type=int, default=1, help="the round's number (its model version in Label Studio)")
    p.add_argument("--out", required=True, type=Path, help="the round's folder (must not exist)")


def run(args: argparse.Namespace) -> None:
    pseudo = LabelStore(args.pseudo_labels)
    pseudo.require_complete()
    entries = {e.image_id: e for e in read_manifest(args.manifest)}
    pool = set(reviewable(list(entries.values()), args.scored_splits))
    unlabelled = [i for i in pseudo.image_ids if i in pool]
    if not unlabelled:
        raise InputError(
            f"{args.manifest}: no image to review (every image of the pseudo-labels is annotated or scores the run,"
            f" splits {', '.join(args.scored_splits)})"
        )
    predictions = LabelStore(args.predictions) if args.predictions else None
    features = None
    if args.features:
        ids, _, vectors = read_features(args.features)
        features = dict(zip(ids, vectors))
    annotated = [i for i, e in entries.items() if e.annotated]
    chosen = choose(candidates(pseudo, unlabelled, predictions), args.k, features, annotated)
    labels = [prelabel(pseudo, c.candidate.image_id, Path(entries[c.candidate.image_id].image)) for c in chosen]
    with atomic_folder(args.out) as tmp:
        write_csv(tmp / "chosen.csv", ["image_id", "rank", "score", "distance", *TERMS], [_row(c) for c in chosen])
        write_cvat_coco(tmp / "cvat", labels, pseudo.class_set)
        write_label_studio(tmp / "label-studio", labels, pseudo.class_set, f"spino-round-{args.round}")
        write_review_page(tmp, pseudo, chosen, labels)
    print(f"{args.out}: {len(chosen)} of {len(unlabelled)} unlabelled images chosen for review round {args.round}")


def prelabel(pseudo: LabelStore, image_id: str, image: Path) -> PreLabel:
    """An image's pseudo-label and confidence at the image's own size (as the tools show it)."""
    index = pseudo.index_of(image_id)
    panoptic = pseudo.panoptic_at_image_size(index)
    confidence = pseudo.confidence(index)
    if confidence.shape != panoptic.shape:
        confidence = resize_nearest(confidence, panoptic.shape)
    return PreLabel(image_id, image, panoptic, confidence)


def _row(choice: Choice) -> list:
    c = choice.candidate
    terms = [getattr(c, t) for t in TERMS]
    return [c.image_id, choice.rank, f"{choice.score:.4f}", _number(choice.distance), *map(_number, terms)]


def _number(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.4f}"


def write_review_page(folder: Path, pseudo: LabelStore, chosen: list[Choice], labels: list[PreLabel]) -> None:
    """``review.html``: per chosen image, image | pseudo-label | confidence (dark: doubtful), and why."""
    rows = []
    for choice, label in zip(chosen, labels):
        image = pseudo.read_image(label.image)
        index = pseudo.index_of(label.image_id)
        confidence = np.repeat((pseudo.confidence(index).astype(np.float32) * 255).astype(np.uint8)[..., None], 3, 2)
        picture = np.concatenate([image, overlay(image, pseudo.panoptic(index), pseudo.class_set), confidence], 1)
        name = f"{choice.rank:02d}.png"
        write_png(folder / "pictures" / name, picture)
        why = ", ".join(f"{t} {v:.3f}" for t in TERMS if (v := getattr(choice.candidate, t)) is not None)
        rows.append(
            f"<h3>{choice.rank + 1}. {html.escape(label.image_id)}</h3><p>score {choice.score:.3f} ({why})</p>"
            f'<img src="pictures/{name}" alt="{html.escape(label.image_id)}">'
        )
    write_png(folder / "pictures" / "legend.png", legend(pseudo.class_set, 3 * pseudo.width))
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>spino review round</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto}img{max-width:100%}</style>"
        "</head><body><h1>Images to review</h1><p>Each: image | pseudo-label | confidence (dark: the teacher"
        " doubts). Score: the mean rank of its terms among the unlabelled images (doubt: rarity-weighted"
        " 1 - confidence; margin: 1 - (p1 - p2); disagreement: the panoptic model's classes against its"
        ' teacher\'s).</p><img src="pictures/legend.png" alt="classes">' + "".join(rows) + "</body></html>\n"
    )
    (folder / "review.html").write_text(page)
