"""A review round through a real Label Studio (SQLite, on 127.0.0.1): the project made from the round's
labelling config, its tasks imported with their pre-drawn polygons, the ground truth submitted as the
annotator's work, COCO exported through the API and read back by spino's COCO reader."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.corrections import apply_corrections
from spino.encoding import LABEL_DIVISOR, semantic_of
from spino.prelabels import PreLabel, write_label_studio

TOKEN = "spino-test-token-0123456789"


class LabelStudio:
    """A Label Studio server's REST API, with the legacy token of the user made at its start."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body=None) -> bytes:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read()

    def json(self, method: str, path: str, body=None):
        return json.loads(self.call(method, path, body))


def _venv_python() -> Path:
    """Label Studio in a venv of its own (its pins are not ours), made once under ~/.cache/spino/venvs;
    sentry-sdk 3 breaks its start, hence the pin."""
    venv = Path.home() / ".cache" / "spino" / "venvs" / "label-studio"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "label-studio").is_file():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        install = [str(python), "-m", "pip", "install", "-q", "label-studio>=1.20", "sentry-sdk>=2.16,<3"]
        installed = made.returncode == 0 and subprocess.run(install, capture_output=True, text=True, timeout=1200)
        if not installed or installed.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(
                f"Label Studio could not be installed in {venv}: {(installed and installed.stderr or '')[-300:]}"
            )
    return venv / "bin" / "label-studio"


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if os.environ.get("SPINO_TEST_TOOLS") != "1":
        pytest.skip("tests with the labelling tools' own software are opt-in: SPINO_TEST_TOOLS=1 (as .ci/run does)")
    command = _venv_python()
    data = tmp_path_factory.mktemp("label-studio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": "spino@example.com",
        "LABEL_STUDIO_PASSWORD": "spino-test-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    }
    url = f"http://127.0.0.1:{port}"
    log = open(data / "server.log", "w")
    server = subprocess.Popen(
        [str(command), "start", "--no-browser", "--port", str(port), "--host", url],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
    )
    deadline = time.time() + 180
    while time.time() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        server.kill()
        tail = (data / "server.log").read_text()[-300:]
        pytest.skip(f"Label Studio did not start on {url}: {tail}")
    yield LabelStudio(url)
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_a_round_trips_through_label_studio(label_studio: LabelStudio, tmp_path: Path) -> None:
    """The predictions arrive as pre-drawn regions; the annotator's labels (here: the ground truth)
    come back through Label Studio's COCO export, taken back as a round's corrections
    (annotation.corrections: its images found among the run's by name), at per-segment IoU >= 0.98 for
    every segment of 100 pixels or more (smaller ones are lost to polygons: a few pixels' outline; a
    thing seen in two parts comes back as two instances, each exact)."""
    from spino.data.synthetic import DemoSpec, write_demo

    write_demo(tmp_path / "demo", DemoSpec(n_train=3, n_val=0, height=192, width=384, seed=3))
    demo = open_dataset("demo", tmp_path / "demo")
    truth = {r.image_id: demo.read_panoptic(r) for r in demo.scan()}
    labels = [PreLabel(r.image_id, Path(r.image), truth[r.image_id], np.full((192, 384), 0.8)) for r in demo.scan()]
    write_label_studio(tmp_path / "round", labels, DEMO, "spino-round-1")

    config = (tmp_path / "round" / "labeling-config.xml").read_text()
    project = label_studio.json("POST", "/api/projects", {"title": "spino round 1", "label_config": config})["id"]
    tasks = json.loads((tmp_path / "round" / "tasks.json").read_text())
    imported = label_studio.json("POST", f"/api/projects/{project}/import", tasks)
    assert (imported["task_count"], imported["prediction_count"]) == (3, 3)
    for task in label_studio.json("GET", f"/api/projects/{project}/tasks?page_size=100"):
        predictions = label_studio.json("GET", f"/api/predictions?task={task['id']}")
        drawn = predictions[0]["result"]
        sent = next(t for t in tasks if t["data"]["spino_id"] == task["data"]["spino_id"])
        assert len(drawn) == len(sent["predictions"][0]["result"]) > 10  # every polygon arrived pre-drawn
        assert {r["type"] for r in drawn} == {"polygonlabels"}
        # the annotator submits the ground truth (here what was pre-drawn: the pseudo-labels were the truth)
        label_studio.call("POST", f"/api/tasks/{task['id']}/annotations", {"result": drawn})

    export = zipfile.ZipFile(io.BytesIO(label_studio.call("GET", f"/api/projects/{project}/export?exportType=COCO")))
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "result.json").write_bytes(export.read("result.json"))
    # fed back as a round's corrections: Label Studio's "<hash>__<name>" images found among the run's by name
    records, said = apply_corrections(demo.scan(), [str(folder)], DEMO)
    assert said == f"annotation.corrections: round 1: 3 images from {folder / 'result.json'}"
    assert all(r.round == 1 and r.semantic == str(folder / "result.json") for r in records)
    for record in records:
        pan = demo.read_panoptic(record)
        semantic = semantic_of(pan)
        expected = truth[record.image_id]
        assert (semantic == semantic_of(expected)).mean() > 0.97
        for pid in np.unique(expected):
            mask = expected == pid
            if mask.sum() < 100:
                continue
            cls, instance = divmod(int(pid), LABEL_DIVISOR)
            same_class = semantic == cls
            if instance:  # the read-back instances lying mostly inside it: an occluded car seen in two
                # parts comes back as two (a Label Studio region is one polygon), each part exact
                ids = [i for i in np.unique(pan[mask & same_class]) if (mask[pan == i]).mean() > 0.5]
                mine = np.isin(pan, ids)
            else:  # stuff: the class's region
                mine = same_class & (pan % LABEL_DIVISOR == 0)
            iou = (mine & mask).sum() / (mine | mask).sum()
            assert iou >= 0.98, (record.image_id, DEMO.names[cls], int(mask.sum()), round(float(iou), 4))
