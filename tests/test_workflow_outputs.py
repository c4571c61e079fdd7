"""Stages 8-9 through the workflow: the report (rendered in a real browser; snakemake --report) and
`snakemake segment` (scores as the predictions; reruns for a new image only)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, copy_of, planned_rules, snakemake, spino_cli

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("on_the_cpu")]


PROBE = """<script>window.addEventListener("load", () => {
  const seen = [...document.images].map(image => {
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const pixels = image.naturalWidth ? context.getImageData(0, 0, canvas.width, canvas.height).data : [];
    let sum = 0;
    for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
    return [image.getAttribute("src"), image.naturalWidth, image.naturalHeight, sum / Math.max(1, pixels.length / 4 * 3)];
  });
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify(seen);
  document.body.appendChild(probe);
});</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(finished_run: Path, tmp_path: Path) -> None:
    """The report as headless Chromium loads it (a copy, with a script that writes what the browser
    decoded into the page): both pictures decoded whole (their size and mean colour as the browser drew
    them equal the PNG files'), the gallery with a row per predicted val image and a column per label
    source, and the score table holding the run's numbers."""
    import html

    from PIL import Image

    from spino.classes import DEMO
    from spino.viz import legend

    report = tmp_path / "report"
    shutil.copytree(finished_run / "results" / "tiny" / "report", report)
    page = report / "report.html"
    page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    seen = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    decoded = {src: (width, height, mean) for src, width, height, mean in seen}
    assert set(decoded) == {"curves.png", "gallery.png"}
    for name, (width, height, mean) in decoded.items():
        picture = np.asarray(Image.open(report / name).convert("RGB"), dtype=np.float64)
        assert (width, height) == (picture.shape[1], picture.shape[0]) and mean == pytest.approx(
            picture.mean(), abs=0.5
        ), name
    # image | ground truth | pseudo-labels | model; 3 val images; then the legend of the 7 classes
    assert decoded["gallery.png"][:2] == (4 * 128, 3 * 64 + legend(DEMO, 4 * 128).shape[0])

    results = finished_run / "results" / "tiny" / "scores"
    runs = [
        json.loads((results / f"{stage}.json").read_text())["summary"] for stage in ("pseudo_labels", "predictions")
    ]
    for group in ("all", "things", "stuff"):
        row = re.search(rf"<tr><th>{group}</th>(.*?)</tr>", dom, re.S).group(1)
        cells = re.findall(r"<td>(.*?)</td>", row)
        expected = []
        for run in runs:
            expected += [f"{100 * run[group][m]:.1f}" for m in ("pq", "sq", "rq")] + [
                f"{100 * run['miou']:.1f}" if group == "all" else ""
            ]
        assert cells == expected, (group, cells, expected)


def test_snakemake_report(finished_run: Path, tmp_path: Path) -> None:
    result = snakemake(finished_run, TINY, "--report", str(tmp_path / "report.html"))
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "report.html").read_text()
    assert "report.html" in page and "gallery.png" in page and "train_panoptic" in page


# -- the trained model on new images ---------------------------------------------------------------
def test_segment_on_the_val_images_scores_exactly_as_the_predictions(finished_run: Path, tmp_path: Path) -> None:
    """`spino segment --format gtfine` on the run's val images (one thread, as the predict rule runs)
    scores under `spino evaluate` as results/tiny/predictions.zarr does: the deployed path and the
    workflow's are the same predictions."""
    import pandas as pd

    results = finished_run / "results" / "tiny"
    manifest = pd.read_csv(results / "manifest.csv", keep_default_na=False)
    val = [str(finished_run / p) for p in manifest[manifest.split == "val"].image]
    out = tmp_path / "segmented"
    result = spino_cli(
        finished_run,
        "--threads",
        "1",
        "segment",
        str(results / "panoptic/model.pt"),
        *val,
        "--out",
        str(out),
        "--format",
        "gtfine",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = {}
    for name, prediction in (("workflow", results / "predictions.zarr"), ("segment", out)):
        args = [
            str(prediction),
            "--gt",
            str(results / "ground_truth.zarr"),
            "--manifest",
            str(results / "manifest.csv"),
        ]
        args += [
            "--exclude-annotated",
            "--json",
            str(tmp_path / f"{name}.json"),
            "--csv",
            str(tmp_path / f"{name}.csv"),
        ]
        assert spino_cli(finished_run, "evaluate", *args).returncode == 0
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["segment"]["summary"]["images"] == scores["workflow"]["summary"]["images"] == len(val)
    assert_same_numbers(scores["segment"], scores["workflow"])


def assert_same_numbers(a, b, where: str = "") -> None:
    """The same structure, the same ints and strings, floats within 1e-9 (NaN equal to NaN)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_numbers(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_numbers(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-9 or (np.isnan(a) and np.isnan(b)), (where, a, b)
    else:
        assert a == b, where


def test_snakemake_segment_reruns_for_a_new_image_and_for_nothing_else(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    photos = run / "photos"
    photos.mkdir()
    images = sorted((run / "resources/demo-tiny/images").glob("*.png"))
    for image in images[:2]:
        shutil.copy(image, photos / image.name)
    config = {**copy.deepcopy(TINY), "segment": {"inputs": ["photos"], "format": "coco"}}
    result = snakemake(run, config, "segment")
    assert result.returncode == 0, result.stderr[-3000:]
    out = run / "results/tiny/segment"
    payload = json.loads((out / "panoptic.json").read_text())
    assert [a["image_id"] for a in payload["annotations"]] == [p.stem for p in images[:2]]
    assert len(list((out / "overlay").glob("*.png"))) == 2  # segment.overlay: true by default
    assert planned_rules(snakemake(run, config, "segment", "-n")) == set()
    other = {**config, "suggest": {"k": 3}}
    assert planned_rules(snakemake(run, other, "segment", "-n")) == set()
    shutil.copy(images[2], photos / images[2].name)
    assert planned_rules(snakemake(run, config, "segment", "-n")) == {"segment"}
    result = snakemake(run, config, "segment")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(json.loads((out / "panoptic.json").read_text())["annotations"]) == 3
    # segment.track: the folder's images as one tracked sequence, a changed setting reruns the job
    tracked = {**config, "segment": {**config["segment"], "track": {"sequence": True, "max_gap": 2}}}
    assert planned_rules(snakemake(run, tracked, "segment", "-n")) == {"segment"}
    result = snakemake(run, tracked, "segment")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "segment.json").read_text())["tracking"]
    assert summary["sequence"] and summary["max_gap"] == 2
    rows = (out / "tracks.csv").read_text().splitlines()
    assert rows[0].startswith("sequence,track_id") and len(rows) - 1 == summary["tracks"]
