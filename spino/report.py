"""The run report: pseudo-label and model scores side by side, curves, timings, overlays, config.

Reads only the run's artifacts (``results/<run>/``) and writes ``report.html`` with its PNGs into
one folder, which can be opened from disk or shipped as is.
"""

from __future__ import annotations

import csv
import html
import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spino.data.io import atomic_path, write_png  # noqa: E402
from spino.data.manifest import read_manifest, working_size  # noqa: E402
from spino.estimate import Work, estimate, machine_speed  # noqa: E402
from spino.labelgen.head_kinds import HEAD_KINDS
from spino.store import LabelStore  # noqa: E402
from spino.viz import colorize, legend, overlay  # noqa: E402

STAGES = ("pseudo_labels", "predictions")
TITLES = {"pseudo_labels": "pseudo-labels", "predictions": "panoptic model"}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _scores(results: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Each stage's score summary, and for stages that were not scored, why (spino evaluate --none-ok)."""
    out, not_scored = {}, {}
    for stage in STAGES:
        path = results / "scores" / f"{stage}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            if "not_scored" in data:
                not_scored[stage] = data["not_scored"]
            else:
                out[stage] = data["summary"]
    return out, not_scored


def not_scored_notes(not_scored: dict[str, str]) -> str:
    return "".join(f"<p><b>{TITLES[s]} not scored</b>: {html.escape(why)}</p>" for s, why in not_scored.items())


def seen_note(settings: dict, scores: dict[str, dict]) -> str:
    """Where the model is scored on a split it trained on (one labelled export: the images kept out
    of the heads' training), a note that its scores are of images it saw, as pseudo-labels only."""
    panoptic = settings.get("panoptic", {})
    seen = sorted(set(panoptic.get("eval_splits") or []) & set(panoptic.get("train_splits") or []))
    if not seen or "predictions" not in scores:
        return ""
    return (
        f"<p><b>{TITLES['predictions']} scored on images it trained on</b>: split {', '.join(map(repr, seen))} is"
        " both a training and a scored split (<code>panoptic.train_splits</code>, <code>eval_splits</code>), so"
        " the scored images were seen by the student as pseudo-labels, never as ground truth; scores on"
        " images it never saw are lower.</p>"
    )


def score_tables(scores: dict[str, dict]) -> str:
    if not scores:
        return "<p>No scores.</p>"
    head = "".join(f"<th colspan=4>{TITLES[s]} ({scores[s]['images']} images)</th>" for s in scores)
    sub = "<th>PQ</th><th>SQ</th><th>RQ</th><th>mIoU</th>" * len(scores)
    rows = []
    for group in ("all", "things", "stuff"):
        cells = "".join(
            f"<td>{100 * v[group]['pq']:.1f}</td><td>{100 * v[group]['sq']:.1f}</td><td>{100 * v[group]['rq']:.1f}</td>"
            f"<td>{100 * v['miou']:.1f}</td>"
            if group == "all"
            else f"<td>{100 * v[group]['pq']:.1f}</td><td>{100 * v[group]['sq']:.1f}</td><td>{100 * v[group]['rq']:.1f}</td><td></td>"
            for v in scores.values()
        )
        rows.append(f"<tr><th>{group}</th>{cells}</tr>")
    summary = f"<table><tr><th></th>{head}</tr><tr><th></th>{sub}</tr>{''.join(rows)}</table>"
    names = list(next(iter(scores.values()))["per_class"])
    per_class = [
        "<table><tr><th>class</th>"
        + "".join(f"<th>PQ {TITLES[s]}</th><th>IoU {TITLES[s]}</th>" for s in scores)
        + "</tr>"
    ]
    for name in names:
        cells = ""
        for v in scores.values():
            c = v["per_class"][name]
            iou = "" if c["iou"] is None else f"{100 * c['iou']:.1f}"
            cells += f"<td>{100 * c['pq']:.1f}</td><td>{iou}</td>"
        kind = "thing" if next(iter(scores.values()))["per_class"][name]["thing"] else "stuff"
        per_class.append(f"<tr><th>{html.escape(name)} <small>({kind})</small></th>{cells}</tr>")
    return summary + "<h3>Per class</h3>" + "".join(per_class) + "</table>"


def record_round(results: Path, settings: dict, scores: dict[str, dict]) -> Path:
    """``results/<run>/rounds/round-<n>.json``: this round's scores and annotated images (n: the corrected
    exports taken, annotation.corrections), kept when the next round reruns the run, for the rounds table."""
    number = len(settings.get("annotation", {}).get("corrections") or [])
    manifest = results / "manifest.csv"
    per_round = Counter(e.round for e in read_manifest(manifest) if e.annotated) if manifest.is_file() else Counter()
    record = {
        "round": number,
        "annotated": {str(k): per_round[k] for k in sorted(per_round)},
        "scores": {
            stage: {
                "images": v["images"],
                "pq": v["all"]["pq"],
                "things": v["things"]["pq"],
                "stuff": v["stuff"]["pq"],
                "miou": v["miou"],
            }
            for stage, v in scores.items()
        },
    }
    path = results / "rounds" / f"round-{number}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path


def rounds_table(results: Path) -> str:
    """The scores of each review round side by side (from rounds/round-<n>.json); nothing before a second round."""
    records = sorted(
        (json.loads(p.read_text()) for p in (results / "rounds").glob("round-*.json")), key=lambda r: r["round"]
    )
    if len(records) < 2:
        return ""
    stages = [s for s in STAGES if any(s in r["scores"] for r in records)]
    head = "".join(f"<th colspan=4>{TITLES[s]}</th>" for s in stages)
    sub = "<th>PQ</th><th>things</th><th>stuff</th><th>mIoU</th>" * len(stages)
    rows = []
    for r in records:
        cells = "".join(
            "".join(f"<td>{100 * r['scores'][s][k]:.1f}</td>" for k in ("pq", "things", "stuff", "miou"))
            if s in r["scores"]
            else "<td></td>" * 4
            for s in stages
        )
        rows.append(f"<tr><th>{r['round']}</th><td>{sum(r['annotated'].values())}</td>{cells}</tr>")
    return (
        "<h2>Review rounds</h2><p>Each round's scores, on the same scored images while the scored splits stay the"
        " same (round 0: the first annotations; round n: with the corrections of rounds 1..n,"
        " <code>annotation.corrections</code>).</p>"
        f"<table><tr><th>round</th><th>annotated images</th>{head}</tr><tr><th></th><th></th>{sub}</tr>"
        + "".join(rows)
        + "</table>"
    )


def plot_curves(results: Path, out: Path) -> bool:
    curves = {f"{kind} head": _read_csv(results / "heads" / f"{kind}_losses.csv") for kind in HEAD_KINDS}
    curves["panoptic model"] = _read_csv(results / "panoptic" / "losses.csv")
    validation = _read_csv(results / "panoptic" / "validation.csv")
    panels = [(k, v) for k, v in curves.items() if v] + ([("validation PQ", validation)] if validation else [])
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels):
        if title == "validation PQ":
            ax.plot([int(r["step"]) for r in rows], [100 * float(r["pq"]) for r in rows], "o-", label="PQ")
            ax.plot([int(r["step"]) for r in rows], [100 * float(r["miou"]) for r in rows], "s-", label="mIoU")
            ax.legend()
        else:
            steps = np.array([int(r["step"]) for r in rows])
            loss = np.array([float(r["loss"]) for r in rows])
            ax.plot(steps, loss, alpha=0.3)
            k = max(1, len(loss) // 20)
            ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return True


def job_benchmarks(results: Path) -> dict[str, list[tuple[float, float]]]:
    """Each rule's jobs as (seconds, peak RSS in MB), from Snakemake's benchmark files (``<rule>.tsv``,
    or one file per job in ``<rule>/``)."""
    jobs: dict[str, list[tuple[float, float]]] = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with open(path, newline="") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                rss = float(r["max_rss"]) if r["max_rss"] not in ("", "-", "NA") else 0.0
                jobs.setdefault(rule, []).append((float(r["s"]), rss))
    return jobs


def timings(results: Path) -> list[tuple[str, float, float]]:
    """(rule, seconds summed over its jobs, peak RSS in MB) from Snakemake's benchmark files."""
    return [(rule, sum(s for s, _ in runs), max(m for _, m in runs)) for rule, runs in job_benchmarks(results).items()]


def time_table(results: Path, settings: dict) -> str:
    """Each benchmarked rule's seconds and peak memory, beside what ``spino init``'s estimate gives it
    on this machine (spino.estimate: the rates it rests on, and how far off it was, are stated)."""
    measured = timings(results)
    estimated = {}
    manifest = results / "manifest.csv"
    if manifest.is_file() and "panoptic" in settings:
        # stages config gpus puts on a GPU are left out: the estimate models CPUs only
        estimated = estimate(settings, manifest_work(manifest, settings), machine_speed(), gpu=True)
    rows = "".join(
        f"<tr><td>{html.escape(rule)}</td><td>{s:.1f}</td><td>{_seconds(estimated.get(rule))}</td><td>{m:.0f}</td></tr>"
        for rule, s, m in measured
    )
    took, guessed = sum(s for r, s, _ in measured if r in estimated), sum(estimated.get(r, 0) for r, _, _ in measured)
    total = (
        f"<tr><th>together</th><td>{took:.1f}</td><td>{_seconds(guessed or None)}</td><td></td></tr>" if took else ""
    )
    return (
        "<p>Seconds summed over each rule's jobs (Snakemake's benchmark files), beside the estimate"
        " <code>spino init</code> prints: per-image and per-step rates measured on a 2-core reference CPU,"
        " scaled by this machine's speed on a matrix product.</p>"
        "<table><tr><th>rule</th><th>seconds (all jobs)</th><th>estimated</th><th>peak RSS (MB)</th></tr>"
        f"{rows}{total}</table>"
    )


def manifest_work(manifest: Path, settings: dict) -> Work:
    """What the run did, from its manifest (for the estimate set beside its times)."""
    entries = read_manifest(manifest)
    return Work(
        images=dict(Counter(e.split for e in entries)),
        labelled=dict(Counter(e.split for e in entries if e.has_gt)),
        annotated=sum(e.annotated for e in entries),
        size=working_size(entries, settings["dataset"].get("image_size")),
    )


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def gallery(results: Path, out: Path, count: int = 4) -> list[str]:
    """Rows of image | ground truth | pseudo-label | prediction for the first images that have all.

    Returns the column titles (empty when there is nothing to show).
    """
    stores = {}
    for name in ("ground_truth", "pseudo_labels", "predictions"):
        path = results / f"{name}.zarr"
        if path.is_dir():
            stores[name] = LabelStore(path)
    if "ground_truth" not in stores or len(stores) < 2:
        return []
    held = [set(s.image_ids) for s in stores.values()]  # sets: a list's `in` would cost N x N over the ids
    ids = [i for i in stores.get("predictions", stores["pseudo_labels"]).image_ids if all(i in h for h in held)]
    rows = []
    for image_id in ids[:count]:
        gt = stores["ground_truth"]
        image = gt.read_image(gt.meta["image_paths"][gt.index_of(image_id)])
        panels = [image]
        for store in stores.values():
            pan = store.panoptic(store.index_of(image_id))
            panels.append(
                overlay(image, pan, store.class_set, alpha=0.7) if store is not gt else colorize(pan, gt.class_set)
            )
        rows.append(np.concatenate(panels, axis=1))
    if not rows:
        return []
    picture = np.concatenate(rows, axis=0)
    write_png(out, np.concatenate([picture, legend(gt.class_set, picture.shape[1])], axis=0))
    return ["image", "ground truth"] + [TITLES[name] for name in stores if name != "ground_truth"]


def write_report(results: str | Path, settings: dict, out: str | Path) -> Path:
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores, not_scored = _scores(results)
    record_round(results, settings, scores)
    has_curves = plot_curves(results, out / "curves.png")
    columns = gallery(results, out / "gallery.png")
    stages = time_table(results, settings)
    config = json.dumps(settings, indent=2)
    instance = settings.get("panoptic", {}).get("model", {}).get("instance", "center_offset")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spino report: {html.escape(results.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
pre {{ background: #f6f6f6; padding: 1em; overflow: auto; }}
</style></head><body>
<h1>spino report: {html.escape(results.name)}</h1>
<h2>Scores</h2>
<p>PQ, SQ, RQ in % (COCO-panoptic rules, as cityscapesscripts); mIoU in %. The panoptic model's
instance method: <b>{html.escape(instance)}</b> (<code>panoptic.model.instance</code>).</p>
{not_scored_notes(not_scored)}{seen_note(settings, scores)}{score_tables(scores)}
{rounds_table(results)}
<h2>Training curves</h2>
{'<img src="curves.png" alt="training curves">' if has_curves else "<p>No training logs yet.</p>"}
<h2>Time per stage</h2>
{stages}
<h2>Gallery</h2>
<p>{" | ".join(columns)} (the class colours below the pictures; * things, each instance a shade of its colour)</p>
{'<img src="gallery.png" alt="overlays">' if columns else "<p>No labels to show yet.</p>"}
<h2>Configuration</h2>
<pre>{html.escape(config)}</pre>
</body></html>
"""
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page)
    return out / "report.html"
