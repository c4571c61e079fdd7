"""The Snakemake workflow end to end on a tiny demo: every shipped config, caching that follows content
(parameters, code, dataset listing, shard files, panoptic resume), bad config, the report."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import AFTER_THE_HEADS, REPO, TINY, planned_rules, readme_rerun_table, snakemake

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def on_the_cpu():
    """The workflow tests run on the CPU on any machine: their exact-weights and fingerprint checks hold
    on the CPU only (on a GPU, tests/test_panoptic.py and benchmarks/gpu_check.sh run the GPU paths)."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    yield
    if before is None:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = before


# The tiny run's panoptic model as Panoptic-DeepLab trained it before it moved behind the instance-method
# interface (commit 9765c70): sha256 of the weights' bytes in state-dict order, and of losses.csv.
# CPU kernels differ in their last bits between instruction sets, and between CPUs of one instruction
# set (oneDNN picks kernels by model): the run must give one of the pairs recorded with that set. The
# second pair is main at 8a0c86f, unchanged, rerun on an AMD EPYC (AVX512) machine where CI also runs.
FINGERPRINTS = {
    "AVX512": {
        (
            "bd02dcfb0520ef113db30b4ca455c1d9138d53c5f0882743038fcce02a07cf06",
            "bb559bf62b0ebbbf05b92b5d539b94409b423df34309cee14b7176b7b1552e33",
        ),
        (
            "e7740dfc39f6ec848f044bab3b9300a1ae5e0519047d22826a739d6e60b59cc6",
            "136f8e7b9521c3c21d3c4329bddceff2bf9c31e4562f4e223ec2e4d36bbf934b",
        ),
    }
}


def test_center_offset_model_is_bit_identical_behind_the_instance_interface(finished_run: Path) -> None:
    import hashlib

    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in FINGERPRINTS:
        pytest.skip(f"fingerprints recorded with {', '.join(FINGERPRINTS)} kernels; this CPU runs {capability}")
    panoptic = finished_run / "results" / "tiny" / "panoptic"
    weights = hashlib.sha256()
    for value in torch.load(panoptic / "model.pt", weights_only=True)["model"].values():
        weights.update(value.contiguous().numpy().tobytes())
    losses = hashlib.sha256((panoptic / "losses.csv").read_bytes()).hexdigest()
    assert (weights.hexdigest(), losses) in FINGERPRINTS[capability]


def test_solov2_instances_run_end_to_end(finished_run: Path, tmp_path: Path) -> None:
    """panoptic.model.instance: solov2 trains, predicts, scores and reports with the same machinery,
    on a copy of the finished tiny run: only the panoptic stages run again (the copy keeps Snakemake's
    timestamps and provenance, or the index and heads would run too)."""
    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(TINY)
    config["panoptic"]["model"]["instance"] = "solov2"
    config["panoptic"]["model"]["solov2"] = {
        "grids": [12, 8, 6],
        "strides": [8, 16, 32],
        "scale_ranges": [[0, 0.3], [0.15, 0.6], [0.3, 10]],
    }
    panoptic_stages = {"train_panoptic", "create_prediction_store", "predict", "gather", "evaluate", "report", "all"}
    assert planned_rules(snakemake(run, config, "-n")) == panoptic_stages
    result = snakemake(run, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule train_semantic_head" not in result.stdout + result.stderr
    results = run / "results" / "tiny"
    header = (results / "panoptic" / "losses.csv").read_text().splitlines()[0]
    assert header == "step,lr,loss,semantic,category,mask"
    scores = json.loads((results / "scores" / "predictions.json").read_text())["summary"]
    assert scores["images"] == 3
    report = (results / "report" / "report.html").read_text()
    assert "instance method" in report and "solov2" in report
    assert "Nothing to be done" in snakemake(run, config, "-n").stdout


def test_workflow_runs_all_stages_and_then_has_nothing_to_do(finished_run: Path) -> None:
    results = finished_run / "results" / "tiny"
    scores = json.loads((results / "scores" / "pseudo_labels.json").read_text())["summary"]
    assert scores["images"] == 7  # 9 images, the 2 annotated left out
    # measured: PQ 0.029 (stuff 0.036), mIoU 0.194; chance mIoU is ~0.07 for 7 classes
    assert scores["all"]["pq"] >= 0.02 and scores["stuff"]["pq"] >= 0.025 and scores["miou"] >= 0.17
    assert json.loads((results / "pseudo_labels.complete.json").read_text())["complete"]
    assert len(list((results / "pseudo_labels.shards").glob("*.json"))) == 3
    assert (finished_run / "logs" / "tiny" / "pseudo_label" / "0.log").is_file()
    model_scores = json.loads((results / "scores" / "predictions.json").read_text())["summary"]
    assert model_scores["images"] == 3  # the val images; 6 steps train no useful model, so: the model's own pixels
    assert model_scores["miou"] == pytest.approx(
        miou_counted(results / "predictions.zarr", results / "ground_truth.zarr"), abs=1e-9
    )
    assert "no GPU: training on the CPU" in (finished_run / "logs" / "tiny" / "train_panoptic.log").read_text()
    page = (results / "report" / "report.html").read_text()
    assert "pseudo-labels" in page and "panoptic model" in page and 'src="gallery.png"' in page
    again = snakemake(finished_run, TINY, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def miou_counted(prediction: Path, ground_truth: Path) -> float:
    """mIoU of a store's images against the ground-truth store, counted here from their pixels."""
    from spino.encoding import semantic_of
    from spino.store import LabelStore

    from helpers import class_ious

    pred, gt = LabelStore(prediction), LabelStore(ground_truth)
    p = np.stack([semantic_of(pred.panoptic(i)) for i in range(pred.num_images)])
    g = np.stack([semantic_of(gt.panoptic(gt.index_of(image_id))) for image_id in pred.image_ids])
    return float(np.mean([iou for iou in class_ious(p, g, gt.class_set.num_classes) if iou is not None]))


GPU_RULES = {"train_semantic_head", "train_boundary_head", "pseudo_label", "train_panoptic", "predict"}


def job_events(log: str) -> list[tuple[str, str, str]]:
    """("start" | "finish", jobid, rule) in the order Snakemake dispatched and collected its jobs."""
    pattern = (
        r"^(?:local)?(?:rule|checkpoint) (\w+):\n(?:\s+.*\n)*?\s+jobid: (\d+)|^Finished jobid: (\d+) \(Rule: (\w+)\)"
    )
    return [("start", m[2], m[1]) if m[1] else ("finish", m[3], m[4]) for m in re.finditer(pattern, log, re.M)]


def test_profile_runs_one_gpu_job_at_a_time_and_cpu_jobs_beside_it(finished_run: Path) -> None:
    """With --cores 2 under profiles/default (gpu=1), the jobs that declare a GPU never run two at once;
    jobs that declare none still run beside them."""
    events = job_events((finished_run / "snakemake.out").read_text())
    running: dict[str, str] = {}
    most_gpu = most_alongside = 0
    for kind, job, rule in events:
        if kind == "finish":
            running.pop(job)
            continue
        running[job] = rule
        gpu_jobs = [r for r in running.values() if r in GPU_RULES]
        most_gpu = max(most_gpu, len(gpu_jobs))
        most_alongside = max(most_alongside, len(running) if gpu_jobs else 0)
    started = [rule for kind, _, rule in events if kind == "start"]
    assert started.count("pseudo_label") == 3 and started.count("predict") == 1 and not running
    assert most_gpu == 1 and most_alongside == 2


def test_gpus_of_a_stage_are_its_jobs_request_and_device(tmp_path: Path) -> None:
    """config `gpus` alone decides: 0 asks for no GPU and pins the job to the CPU; 1 asks for one."""

    def semantic_head_job(gpus: dict) -> tuple[str, str]:
        plan = snakemake(tmp_path, {**TINY, "gpus": gpus}, "-n", "-p").stdout
        job = plan.split("rule train_semantic_head:")[1].split("\n\n")[0]
        return job.split("resources: ")[1].split("\n")[0], job.split("spino --threads")[1]

    resources, command = semantic_head_job({"pseudo_label": 1})  # heads: the schema's default, 0
    assert "gpu=0" in resources and "--device cpu" in command
    resources, command = semantic_head_job({"heads": 1})
    assert "gpu=1" in resources and "--device auto" in command


def test_changed_semantic_head_parameter_spares_the_boundary_head(finished_run: Path) -> None:
    config = copy.deepcopy(TINY)
    config["semantic_head"]["lr"] = 2e-3
    plan = planned_rules(snakemake(finished_run, config, "-n"))
    assert "train_semantic_head" in plan and "pseudo_label" in plan and "evaluate" in plan
    assert "train_boundary_head" not in plan and "index" not in plan and "write_ground_truth_shard" not in plan


@pytest.mark.parametrize(
    "section, key, value, rule",
    [
        ("pseudo_labels", "boundary_threshold", 1.5, "maximum"),
        ("self_training", "rounds", 0, "minimum"),
        ("primaps", "coverage", 1.5, "maximum"),
    ],
)
def test_config_that_fails_the_schema_is_reported(
    tmp_path: Path, section: str, key: str, value: float, rule: str
) -> None:
    config = copy.deepcopy(TINY)
    config.setdefault(section, {})[key] = value
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert key in output and str(value) in output and rule in output


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


# -- every shipped config --------------------------------------------------------------------------
SHIPPED_CONFIGS = sorted((REPO / "config").glob("*.yaml")) + sorted((REPO / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("config_file", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_passes_a_dry_run(config_file: Path, tmp_path: Path) -> None:
    """Each config stands on its own (no default leaks in) and plans the whole workflow from the index on.

    A dry run reads no dataset, so configs whose data is absent here (Cityscapes) plan the same jobs
    once their dataset folder and weights file exist (empty stand-ins, in a work folder of the test's).
    """
    config = yaml.safe_load(config_file.read_text())
    workdir = tmp_path / "work"
    workdir.mkdir()
    if config["dataset"]["kind"] != "demo":  # the demo is generated by the workflow
        (workdir / config["dataset"]["root"]).mkdir(parents=True)
    weights = workdir / config.get("backbone", {}).get("weights", "hub")
    if weights.suffix in (".safetensors", ".pth"):
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.touch()
    result = snakemake(workdir, config_file, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    plan = planned_rules(result)
    if config.get("labelgen") == "primaps":  # label-free: prototypes instead of heads, no panoptic stages
        assert {"index", "fit_primaps", "create_pseudo_label_store", "evaluate"} <= plan
        assert not {"train_semantic_head", "train_panoptic", "report"} & plan
    else:
        assert {"index", "train_semantic_head", "train_boundary_head", "train_panoptic", "report"} <= plan
        assert ("train_embedding_head" in plan) == (config["pseudo_labels"].get("fusion") == "embedding")
    assert ("make_demo" in plan) == (config["dataset"]["kind"] == "demo")


CONDA_FRONTEND = next((tool for tool in ("mamba", "conda") if shutil.which(tool)), None)


@pytest.mark.skipif(
    CONDA_FRONTEND is None, reason="no conda or mamba here, and neither installs from PyPI (conda-forge unreachable)"
)
def test_use_conda_runs_the_tiny_config_in_the_workflow_env(tmp_path: Path) -> None:
    """Every rule in workflow/envs/spino.yaml (built here once): the run completes and scores its labels."""
    result = snakemake(tmp_path, TINY, "--use-conda", "--conda-frontend", CONDA_FRONTEND)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Creating conda environment" in result.stderr + result.stdout
    scores = json.loads((tmp_path / "results/tiny/scores/pseudo_labels.json").read_text())["summary"]
    assert scores["images"] > 0 and (tmp_path / "results/tiny/report/report.html").is_file()


def test_default_config_is_used_without_configfile(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    result = snakemake(tmp_path, None, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "make_demo" in planned_rules(result)


# -- what reruns ------------------------------------------------------------------------------------
def changed(config: dict, dotted_key: str) -> dict:
    """The config with one setting changed (numbers doubled, booleans flipped)."""
    config = copy.deepcopy(config)
    *path, key = dotted_key.split(".")
    section = config
    for part in path:
        section = section.setdefault(part, {})
    old = section.get(key, {"evaluation.exclude_annotated": True, "panoptic.loader_workers": 2}.get(dotted_key))
    section[key] = (not old) if isinstance(old, bool) else old * 2
    return config


def test_readme_says_what_the_dry_run_plans(finished_run: Path) -> None:
    for key, rules in readme_rerun_table():
        plan = planned_rules(snakemake(finished_run, changed(TINY, key), "-n")) - {"all"}
        assert plan == rules, (
            f"docs/caching.md: changing {key} reruns {sorted(rules)}; the dry run plans {sorted(plan)}"
        )


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run (results, logs, .snakemake metadata; mtimes kept) to change without side effects."""
    shutil.copytree(run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def trained_weights(workdir: Path) -> dict:
    import torch

    return torch.load(workdir / "results" / "tiny" / "panoptic" / "model.pt", weights_only=True)["model"]


def test_new_pseudo_labels_retrain_the_panoptic_model_from_step_0(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    before = trained_weights(run)
    digest_before = json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"]
    config = copy.deepcopy(TINY)
    config["pseudo_labels"]["min_pixels"] = 9
    result = snakemake(run, config, "--until", "train_panoptic")  # what uses the model is not asserted here
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"] != digest_before
    log = (run / "logs/tiny/train_panoptic.log").read_text()
    assert "training from scratch (step 0)" in log and "resuming" not in log
    after = trained_weights(run)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_forcerun_trains_the_panoptic_model_from_step_0(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    before = trained_weights(run)
    result = snakemake(run, TINY, "--forcerun", "train_panoptic", "--until", "train_panoptic")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "logs/tiny/train_panoptic.log").read_text()
    assert "that run finished" in log and "training from scratch (step 0)" in log and "resuming" not in log
    after = trained_weights(run)
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)  # same data, seed: same model


def test_killed_panoptic_training_is_planned_again_and_resumes(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(TINY)
    config["panoptic"]["train"].update(steps=60, checkpoint_every=5, val_every=60)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "logs/tiny/train_panoptic.log").unlink()  # the finished run's; the new job writes its own
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(run),
            "--configfile",
            str(run / "config.yaml"),
            "--cores",
            "2",
            "--until",
            "train_panoptic",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=run,
    )
    log = run / "logs/tiny/train_panoptic.log"
    deadline = time.time() + 300
    while time.time() < deadline and "checkpoint written" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    # the training process itself, not its DataLoader workers (forked: the same command line, one level below)
    training = {pid for pid, argv in descendants(proc.pid) if "train-panoptic" in argv and "python" in argv[0]}
    trainer = sorted(training - {child for pid in training for child, _ in descendants(pid)})
    assert len(trainer) == 1, "the training job was not found"
    os.kill(trainer[0], signal.SIGKILL)  # the real `spino train-panoptic`, killed as the OOM killer would
    assert proc.wait(timeout=120) != 0
    assert not (run / "results/tiny/panoptic/model.pt").exists()
    plan = planned_rules(snakemake(run, config, "-n"))
    assert "train_panoptic" in plan
    result = snakemake(run, config, "--until", "train_panoptic")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from checkpoint" in log.read_text()
    assert (run / "results/tiny/panoptic/model.pt").is_file()


def test_lost_or_changed_shard_is_planned_again_and_refused_by_readers(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    store = run / "results/tiny/pseudo_labels.zarr"
    digest = json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"]
    (store / "panoptic/c/1/0/0").unlink()

    dry = snakemake(run, TINY, "-n")
    assert planned_rules(dry) >= {"pseudo_label", "gather", "evaluate"}
    assert re.findall(r"output: results/tiny/pseudo_labels\.shards/(\d+)\.json", dry.stdout) == ["1"]
    refused = spino_cli(
        run, "evaluate", str(store), "--gt", "results/tiny/ground_truth.zarr", "--json", "s.json", "--csv", "s.csv"
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert (
        "pseudo_labels.zarr: label store is incomplete: shard 1 is damaged (panoptic/c/1/0/0 is missing)"
        in refused.stderr
    )
    info = json.loads(spino_cli(run, "info", str(store)).stdout)
    assert info["complete"] is False and list(info["damaged_shards"]) == ["1"]

    result = snakemake(run, TINY)  # repairs exactly that shard
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "results/tiny/pseudo_labels.complete.json").read_text())["digest"] == digest
    assert "Nothing to be done" in snakemake(run, TINY, "-n").stdout

    # random bytes of the same size: only the content check sees them, and reading names the shard
    shard_file = store / "semantic/c/2/0/0"
    data = bytearray(shard_file.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    shard_file.write_bytes(bytes(data))
    assert json.loads(spino_cli(run, "info", str(store)).stdout)["complete"] is True  # sizes only
    verified = json.loads(spino_cli(run, "info", str(store), "--verify").stdout)
    assert (
        verified["complete"] is False
        and "semantic/c/2/0/0 differs from its recorded sha256" in verified["damaged_shards"]["2"]
    )


def descendants(pid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process below ``pid`` (from /proc)."""
    parent, argv = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        child = int(stat.parent.name)
        parent[child], argv[child] = int(fields[1]), [a.decode() for a in cmdline if a]
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child, ppid in parent.items():
            if ppid == current:
                found.append((child, argv[child]))
                todo.append(child)
    return found


def spino_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spino", *args], capture_output=True, text=True, cwd=workdir)


def test_moved_checkout_plans_nothing_and_an_edited_helper_reruns_its_rules(finished_run: Path, tmp_path: Path) -> None:
    clone = tmp_path / "elsewhere" / "spino-clone"
    shutil.copytree(
        REPO,
        clone,
        ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info"),
    )
    # the clone's Snakefile and spino package (PYTHONPATH), as a fresh install of the clone would have them
    moved = snakemake(finished_run, TINY, "-n", snakefile=clone / "workflow" / "Snakefile", pythonpath=clone)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "Nothing to be done" in moved.stdout

    with open(clone / "spino" / "labelgen" / "fusion.py", "a") as f:
        f.write("\n# an edit to the fusion\n")
    plan = planned_rules(
        snakemake(finished_run, TINY, "-n", snakefile=clone / "workflow" / "Snakefile", pythonpath=clone)
    )
    assert "pseudo_label" in plan and "train_semantic_head" not in plan and "index" not in plan


FOLDER = {**TINY, "run": "folder", "dataset": {"kind": "folder", "root": "data", "splits": ["train", "val"]}}


def test_folder_dataset_changes_rerun_the_index_and_bad_splits_fail_there(tmp_path: Path) -> None:
    from spino.data.synthetic import DemoSpec, write_demo

    write_demo(tmp_path / "data", DemoSpec(n_train=4, n_val=2, height=64, width=128, seed=5))
    result = snakemake(tmp_path, FOLDER, "results/folder/manifest.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in snakemake(tmp_path, FOLDER, "-n", "results/folder/manifest.csv").stdout

    images = sorted((tmp_path / "data" / "images").iterdir())
    shutil.copy(images[0], tmp_path / "data" / "images" / "extra.png")
    assert "index" in planned_rules(snakemake(tmp_path, FOLDER, "-n"))
    (tmp_path / "data" / "images" / "extra.png").unlink()

    shutil.copy(tmp_path / "data" / "semantic" / f"{images[0].stem}.png", tmp_path / "data" / "semantic" / "orphan.png")
    failed = snakemake(tmp_path, FOLDER, "results/folder/manifest.csv")
    assert failed.returncode != 0
    assert "semantic: labels without an image in" in (tmp_path / "logs/folder/index.log").read_text()
    (tmp_path / "data" / "semantic" / "orphan.png").unlink()

    no_val = copy.deepcopy(FOLDER)
    no_val["panoptic"]["eval_splits"] = ["test"]
    failed = snakemake(tmp_path, no_val, "results/folder/manifest.csv")
    assert failed.returncode != 0
    assert "split 'test' has no" in (tmp_path / "logs/folder/index.log").read_text()


def test_snakemake_report(finished_run: Path, tmp_path: Path) -> None:
    result = snakemake(finished_run, TINY, "--report", str(tmp_path / "report.html"))
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "report.html").read_text()
    assert "report.html" in page and "gallery.png" in page and "train_panoptic" in page


def test_readme_store_tools_run_on_a_finished_run(finished_run: Path, tmp_path: Path, monkeypatch) -> None:
    """Every `spino` line of the block in docs/label-stores.md, as written (the run named tiny, not demo),
    through the same entry point as the console script (in this process: torch is imported once)."""
    from PIL import Image

    from spino.cli import main
    from spino.encoding import IGNORE_PANOPTIC
    from spino.store import LabelStore

    from helpers import assert_inspect_picture

    block = (REPO / "docs" / "label-stores.md").read_text().split("```bash\n")[1].split("```")[0]
    commands = [
        shlex.split(line.split("#")[0].replace("results/demo", "results/tiny"))
        for line in block.splitlines()
        if line.strip()
    ]
    assert len(commands) == 6 and all(c[0] == "spino" for c in commands)
    workdir = copy_of(finished_run, tmp_path)
    monkeypatch.chdir(workdir)
    for command in commands:
        assert main(command[1:]) == 0, command
    exported = json.loads((workdir / "s.json").read_text())["summary"]
    assert (
        main(
            [
                "evaluate",
                "results/tiny/pseudo_labels.zarr",
                "--gt",
                "results/tiny/ground_truth.zarr",
                "--json",
                "d.json",
                "--csv",
                "d.csv",
            ]
        )
        == 0
    )
    assert exported == json.loads((workdir / "d.json").read_text())["summary"]  # the gtFine export is lossless
    assert exported["images"] == 9
    store = LabelStore(workdir / "results/tiny/pseudo_labels.zarr")
    image = np.asarray(Image.open(workdir / store.meta["image_paths"][3]).convert("RGB"))
    assert_inspect_picture(np.asarray(Image.open(workdir / "overlay.png")), store, 3, image)
    coco = json.loads((workdir / "coco" / "panoptic.json").read_text())
    assert [a["image_id"] for a in coco["annotations"]] == list(store.image_ids)
    for index, annotation in enumerate(coco["annotations"]):
        labelled = int((store.panoptic(index) != IGNORE_PANOPTIC).sum())
        assert sum(s["area"] for s in annotation["segments_info"]) == labelled > 0
        assert (workdir / "coco" / "panoptic" / annotation["file_name"]).is_file()


def test_suggest_writes_the_annotation_section_a_config_takes(finished_run: Path, tmp_path: Path) -> None:
    """`snakemake suggest` chooses k train images by their descriptors; the run itself is untouched,
    and a config taking the suggestion plans a new index and everything after it."""
    from helpers import assert_suggestion_figure

    run = copy_of(finished_run, tmp_path)
    config = {**copy.deepcopy(TINY), "suggest": {"k": 2, "method": "kcenter", "input_size": [64, 128]}}
    result = snakemake(run, config, "suggest")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"report"}  # only the config it shows changed
    suggestion = yaml.safe_load((run / "results/tiny/suggest/annotation.yaml").read_text())
    assert suggestion["annotation"]["split"] == "train" and len(suggestion["annotation"]["ids"]) == 2
    assert_suggestion_figure(run / "results/tiny/suggest/suggestion.png", 2)
    config["annotation"] = suggestion["annotation"]
    assert "index" in planned_rules(snakemake(run, config, "-n"))


SELF_TRAINING = {"enabled": True, "rounds": 1, "neighbours": 2, "epochs": 2, "lr": 1e-3}
BEYOND = {
    **TINY,
    "self_training": SELF_TRAINING,
    "suggest": {"input_size": [64, 128]},
    "pseudo_labels": {**TINY["pseudo_labels"], "fusion": "embedding"},
    "embedding_head": {"hidden": [32, 32], "dim": 8, "input_size": [64, 128], "epochs": 15, "lr": 3e-3},
}


def test_self_training_and_embedding_fusion_rerun_only_what_follows_the_heads(
    finished_run: Path, tmp_path: Path
) -> None:
    """Self-training on and fusion: embedding run, after the kept heads, the image descriptors, the
    self-training and the embedding head; the store is labelled by the self-trained semantic head and
    clustered embeddings, each shard also written as HDF5 that plain h5py reads (segmentation = the
    store's). Changing a self-training or embedding-head setting then reruns that stage and what uses
    it, never the other heads or the descriptors."""
    import h5py

    from spino.store import LabelStore

    run = copy_of(finished_run, tmp_path)
    config = copy.deepcopy(BEYOND)
    plan = snakemake(run, config, "-n", "-p")
    assert planned_rules(plan) - {"all"} == {"image_features", "self_train", "train_embedding_head"} | AFTER_THE_HEADS
    assert "--input semantic_head=results/tiny/self_training/semantic.pt" in plan.stdout
    result = snakemake(run, config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = run / "results/tiny"
    neighbours = (results / "self_training/neighbours.csv").read_text().splitlines()
    assert (
        neighbours[0] == "annotated,rank,neighbour,similarity" and len(neighbours) == 1 + 2 * 2
    )  # 4 of the 4 unlabelled train images
    store = LabelStore(results / "pseudo_labels.zarr")
    for shard in range(store.num_shards):
        with h5py.File(results / f"spoco/{shard}.h5", "r") as f:
            ids = [i.decode() for i in f["image_ids"][:]]
            raw, embeddings, segmentation = f["raw"][:], f["embeddings"][:], f["segmentation"][:]
        assert raw.shape == (len(ids), 64, 128, 3) and raw.dtype == np.uint8
        assert embeddings.shape == (len(ids), 8, 32, 64)  # 4 x the stride-8 features
        for image_id, seg in zip(ids, segmentation):
            assert np.array_equal(seg, store.panoptic(store.index_of(image_id)))
    assert "Nothing to be done" in snakemake(run, config, "-n").stdout
    config["self_training"]["epochs"] = 3
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"self_train"} | AFTER_THE_HEADS
    config["self_training"]["epochs"] = 2
    config["embedding_head"]["instance_fraction"] = 0.1
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == {"train_embedding_head"} | AFTER_THE_HEADS
    config = {**TINY, "self_training": {**SELF_TRAINING, "enabled": False}}
    assert planned_rules(snakemake(run, config, "-n")) - {"all"} == AFTER_THE_HEADS  # back to the first heads' labels


def labels_against_chance(workdir: Path, seeds: int = 3) -> tuple:
    """Unmatched statistics of the label-free run's store against its ground truth, and the matched mIoU
    of the same principal masks given clusters at random (the mean over ``seeds``)."""
    from spino.data.io import read_image
    from spino.labelgen.primaps import load_primaps
    from spino.metrics import PanopticStats
    from spino.store import LabelStore

    from helpers import matched_miou, random_cluster_labels

    results = workdir / "results/tiny"
    labels, gt = LabelStore(results / "pseudo_labels.zarr"), LabelStore(results / "ground_truth.zarr")
    labeller = load_primaps(results / "primaps" / "prototypes.pt")
    classes = gt.class_set.num_classes
    found, chance = PanopticStats(classes), [PanopticStats(classes) for _ in range(seeds)]
    rngs = [np.random.default_rng(seed) for seed in range(seeds)]
    for index, image_id in enumerate(gt.image_ids):
        truth = gt.panoptic(index)
        found.update(truth, labels.panoptic(labels.index_of(image_id)), gt.class_set)
        _, masks = labeller.masks(read_image(workdir / gt.meta["image_paths"][index]))
        for stats, rng in zip(chance, rngs):
            stats.update(truth, random_cluster_labels(masks, truth.shape, classes, rng), gt.class_set)
    return found, float(np.mean([matched_miou(s) for s in chance]))


# A label-free config describes no heads and no panoptic model: it trains neither.
PRIMAPS = {
    **{k: v for k, v in TINY.items() if k not in ("semantic_head", "boundary_head", "panoptic")},
    "labelgen": "primaps",
    "annotation": {"split": "train", "k": 0},
    "primaps": {"input_size": [64, 128]},
}


def test_label_free_run_scores_clusters_after_matching(tmp_path: Path) -> None:
    """labelgen: primaps fits prototypes instead of training heads, labels the store with clusters and
    scores them after a Hungarian matching (saying so); it has no panoptic stages. k: 0 needs it."""
    from spino.classes import DEMO

    from helpers import matched_classes, matched_miou

    plan = planned_rules(snakemake(tmp_path, PRIMAPS, "-n"))
    assert {"fit_primaps", "create_pseudo_label_store", "evaluate"} <= plan  # shard jobs: known after the index
    assert not plan & {"train_semantic_head", "train_boundary_head", "train_panoptic", "predict", "report"}
    result = snakemake(tmp_path, PRIMAPS)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results/tiny/scores/pseudo_labels.json").read_text())["summary"]
    assert summary["matching"] == "hungarian" and summary["images"] == 9
    found, chance = labels_against_chance(tmp_path)
    # the matching the scores name is the one that maximises the pixels clusters and classes share
    classes = found.confusion.shape[0]
    expected = matched_classes(found.confusion)
    assert summary["clusters"] == {str(cluster): DEMO.names[c] for cluster, c in enumerate(expected)}
    assert expected.tolist() != list(range(classes))  # cluster ids are not class ids: the matching mattered
    assert summary["miou"] == pytest.approx(matched_miou(found), abs=1e-9)
    assert summary["miou"] >= 1.5 * chance, (summary["miou"], chance)  # measured: 0.23 vs 0.11
    changed_threshold = {**PRIMAPS, "primaps": {**PRIMAPS["primaps"], "threshold": 0.5}}
    assert planned_rules(snakemake(tmp_path, changed_threshold, "-n")) - {"all"} == {
        "fit_primaps",
        "create_pseudo_label_store",
        "pseudo_label",
        "gather",
        "evaluate",
    }
    heads_without_images = {**TINY, "annotation": {"split": "train", "k": 0}}
    refused = snakemake(tmp_path, heads_without_images, "-n")
    assert refused.returncode != 0 and "needs labelgen: primaps" in refused.stdout + refused.stderr
    refused = snakemake(tmp_path, {**PRIMAPS, "self_training": {"enabled": True}}, "-n")
    assert refused.returncode != 0 and "which labelgen: primaps does not train" in refused.stdout + refused.stderr
    # a run with heads needs no panoptic section either: the paper's panoptic model is the default
    planned = snakemake(tmp_path, {k: v for k, v in TINY.items() if k != "panoptic"}, "-n")
    assert planned.returncode == 0 and {"train_panoptic", "create_prediction_store", "report"} <= planned_rules(planned)


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


# -- your own data: the three-line config, spino init, a CVAT export ----------------------------------
def test_three_settings_plan_the_whole_workflow_with_the_papers_settings(tmp_path: Path) -> None:
    """run, dataset and annotation: {k: 10} are all a config needs; the rest are the paper's settings."""
    from spino.workflow_config import check_config

    (tmp_path / "data").mkdir()
    config = {"run": "mine", "dataset": {"kind": "cityscapes", "root": "data"}, "annotation": {"k": 10}}
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"index", "train_semantic_head", "train_boundary_head", "train_panoptic", "report"} <= planned_rules(result)
    full = check_config(config)
    assert full["backbone"]["name"] == "vit_base_patch14_dinov2.lvd142m"
    assert full["semantic_head"]["hidden"] == [300, 300, 200] and full["boundary_head"]["hidden"] == [600, 600, 400]
    assert full["semantic_head"]["input_size"] == [1008, 2016] and full["semantic_head"]["epochs"] == 50
    assert full["boundary_head"]["epochs"] == 40 and full["pseudo_labels"]["semantic_scales"] == [1, 2, 3]
    assert full["pseudo_labels"]["boundary_scales"] == [3, 4, 5] and full["pseudo_labels"]["splits"] == ["train", "val"]
    assert full["panoptic"]["model"]["channels"] == 768 and full["panoptic"]["model"]["input_size"] == [448, 896]
    assert full["panoptic"]["train_splits"] == ["train"] and full["panoptic"]["eval_splits"] == ["val"]
    assert full["annotation"]["split"] == "train"


def test_every_config_error_is_one_line_and_none_has_a_traceback(tmp_path: Path) -> None:
    config = {
        "dataset": {"kind": "coco"},
        "annotation": {"k": 10, "ids": ["a"]},
        "panoptic": {"train": {"steps": 0, "augment": {"flipp": True}}},
    }
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Using workflow specific profile")]
    assert lines == [
        "spino: the config is not valid:",
        "run: required setting missing",
        "annotation: give exactly one of ids or indices or k",
        "dataset.root: required setting missing",
        "panoptic.train.augment.flipp: unknown setting; panoptic.train.augment takes flip, color_jitter, min_scale,"
        " max_scale",
        "panoptic.train.steps: 0 is less than the minimum of 1",
    ], result.stderr


def test_a_missing_dataset_root_or_weights_file_stops_the_plan_in_one_line_each(tmp_path: Path) -> None:
    config = {
        "run": "mine",
        "dataset": {"kind": "cityscapes", "root": "nowhere"},
        "annotation": {"k": 10},
        "backbone": {"weights": "weights/vitb14.safetensors"},
    }
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Using workflow specific profile")]
    assert lines == [
        "spino: nowhere: dataset.root is not a folder",
        "spino: weights/vitb14.safetensors: backbone.weights file not found (`spino fetch-weights --name"
        " vit_base_patch14_dinov2.lvd142m --out weights/vitb14.safetensors` writes it)",
    ], result.stderr


def test_a_cvat_export_of_ten_labelled_images_runs_end_to_end_from_spino_init(tmp_path: Path) -> None:
    """The story of docs/your-data.md: 10 images labelled in CVAT (COCO 1.0: instances_default.json,
    split default, categories without isthing, stuff as regions), the robot's other images unlabelled,
    three from a second camera of another size (one of them labelled); the config from spino init
    (the test shrinks its model sizes, nothing else); snakemake to the end; spino segment on new images."""
    from PIL import Image

    from spino.cli import main as spino
    from spino.data import open_dataset
    from spino.data.io import resize_nearest
    from spino.data.synthetic import DemoSpec, write_demo
    from spino.store import LabelStore

    from helpers import cvat_export, shrink_init_config

    write_demo(tmp_path / "demo", DemoSpec(n_train=20, n_val=4, height=64, width=128, seed=1))
    cvat_export(tmp_path / "demo", tmp_path / "cvat", labelled=10, resized=3, size=(96, 160))
    work = tmp_path / "work"
    work.mkdir()
    assert spino(["init", str(tmp_path / "cvat"), "--run", "robot", "--out", str(work / "robot.yaml")]) == 0
    text = (work / "robot.yaml").read_text()
    assert "things: [person, car]   # CONFIRM" in text and "k: 10" in text and "eval_splits: []" in text
    config = yaml.safe_load(text)
    assert config["dataset"] == {
        "kind": "coco",
        "root": str(tmp_path / "cvat"),
        "splits": ["default"],
        "things": ["person", "car"],
    }
    shrink_init_config(config)
    result = snakemake(work, config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = work / "results" / "robot"
    manifest = (work / "logs" / "robot" / "index.log").read_text()
    assert "24 images, 10 with ground truth, 10 annotated" in manifest
    assert (
        "working size 128x64 (W x H); 3 images of other sizes are resized to it for the stores (3 at 160x96)"
        in manifest
    )
    for store in ("ground_truth", "pseudo_labels"):
        opened = LabelStore(results / f"{store}.zarr")
        assert (opened.height, opened.width) == (64, 128)
        assert sorted(map(tuple, opened.meta["image_sizes"]))[-1] == (96, 160)  # each image's own size, recorded
    gt = LabelStore(results / "ground_truth.zarr")
    coco = open_dataset("coco", tmp_path / "cvat", ["default"], things=["person", "car"])
    own = coco.read_panoptic(next(r for r in coco.scan() if r.image_id == "demo_0023"))  # the second camera's
    assert own.shape == (96, 160)
    assert np.array_equal(gt.panoptic(gt.index_of("demo_0023")), resize_nearest(own, (64, 128)))
    scores = json.loads((results / "scores" / "pseudo_labels.json").read_text())
    assert "every labelled image was annotated" in scores["not_scored"]
    assert not (results / "scores" / "predictions.json").exists()  # one split: trained, not scored
    report = (results / "report" / "report.html").read_text()
    assert "pseudo-labels not scored</b>: " in report
    export = tmp_path / "export"
    assert spino(["export", str(results / "pseudo_labels.zarr"), "--format", "coco", "--out", str(export)]) == 0
    assert Image.open(export / "panoptic" / "demo_0023.png").size == (160, 96)  # at its own image's size
    assert Image.open(export / "panoptic" / "demo_0000.png").size == (128, 64)
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(tmp_path / "demo" / "images" / "demo_0005.png", new / "a.png")
    Image.open(new / "a.png").resize((200, 120)).save(new / "wide.png")
    assert spino(["segment", str(results / "panoptic" / "model.pt"), str(new), "--out", str(tmp_path / "seg")]) == 0
    assert Image.open(tmp_path / "seg" / "panoptic" / "wide.png").size == (200, 120)
    assert len(json.loads((tmp_path / "seg" / "panoptic.json").read_text())["annotations"]) == 2
