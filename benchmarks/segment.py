"""`spino segment` throughput against the network's forward alone, and its memory over many images.

    python benchmarks/segment.py                      # 200 images of 1024 x 512, eager and ONNX, batch 1 and 4
    python benchmarks/segment.py --images 40 --batch-sizes 1 --no-onnx
    python benchmarks/segment.py --model results/cityscapes-mini/panoptic/model.pt --profile --no-onnx

The model is config/examples/cityscapes-mini.yaml's architecture (EfficientNet-Lite0 with its ImageNet
weights, adapter 96, decoders 64, heads 48, 256 x 512 input) with random heads: the cost does not
depend on the head weights. Images are synthetic PNGs (street-like bands and boxes, plus noise, so
they decode like photos). For each runtime and batch size it prints: images/s of the whole command
(read, resize, network, post-processing at 1024 x 512, COCO PNG writes) and of the forward passes
alone on the same batches, their ratio (target <= 1.25), the same for the forward passes with the
post-processing (what the command adds to the model's own work: reading, resizing, writing), and the main process's peak RSS after a
run of 20 images and after a run of all of them (target: within 5 %; the reader process is apart).
``--model`` times a trained model instead (random heads find few instances: a trained model's
post-processing does its real work); ``--profile`` prints, per image, the post-processing's time
against the forward's, what tracking the images as one sequence adds, and the post-processing's
operators by their own CPU time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from panoptic import synthetic_label  # noqa: E402  (benchmarks/panoptic.py)

from spino.classes import CITYSCAPES_19  # noqa: E402
from spino.config import load  # noqa: E402
from spino.data.io import write_png  # noqa: E402
from spino.deploy.model_files import export_onnx  # noqa: E402
from spino.deploy.segment_files import SegmentOptions, segment_files  # noqa: E402
from spino.deploy.segmenter import Segmenter  # noqa: E402
from spino.deploy.tracking import TrackConfig, Tracker  # noqa: E402
from spino.encoding import semantic_of  # noqa: E402
from spino.panoptic.model import ModelConfig, PanopticModel  # noqa: E402
from spino.panoptic.postprocess import PostprocessConfig  # noqa: E402
from spino.panoptic.saved_model import load_model, save_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def reset_peak_rss() -> None:
    """Linux: start this process's peak resident memory (VmHWM) afresh."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 232, (256, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        label = synthetic_label(rng, size, CITYSCAPES_19)
        paths.append(folder / f"{i:04d}.png")
        write_png(paths[-1], colours[semantic_of(label)] + rng.integers(0, 24, (*size, 3), dtype=np.uint8))
    return paths


def forward_only(segmenter: Segmenter, paths: list[Path], batch_size: int) -> float:
    """Seconds of the network's forward passes alone over the images (prepared up front, not timed)."""
    from spino.data.io import read_image

    batches = [
        torch.stack([segmenter.prepare(read_image(p)) for p in paths[i : i + batch_size]])
        for i in range(0, len(paths), batch_size)
    ]
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            segmenter.model.network(batch)
    return time.perf_counter() - start


def model_alone(segmenter: Segmenter, paths: list[Path], batch_size: int) -> float:
    """Seconds of the network and the post-processing at each image's size (images read up front)."""
    from spino.data.io import read_image

    images = [read_image(p) for p in paths]
    batches = [
        (
            torch.stack([segmenter.prepare(i) for i in images[k : k + batch_size]]),
            [i.shape[:2] for i in images[k : k + batch_size]],
        )
        for k in range(0, len(images), batch_size)
    ]
    start = time.perf_counter()
    for batch, sizes in batches:
        segmenter.segment_prepared(batch, sizes)
    return time.perf_counter() - start


def whole_command(segmenter: Segmenter, paths: list[Path], batch_size: int, out: Path) -> float:
    start = time.perf_counter()
    segment_files(segmenter, [str(p) for p in paths], out, SegmentOptions(batch_size=batch_size, workers=1))
    return time.perf_counter() - start


def untrained_mini_model() -> tuple[PanopticModel, ModelConfig, PostprocessConfig]:
    config = yaml.safe_load((REPO / "config/examples/cityscapes-mini.yaml").read_text())
    torch.manual_seed(0)
    model_cfg = ModelConfig.from_dict(config["panoptic"]["model"], config["backbone"])
    model = PanopticModel(model_cfg, CITYSCAPES_19.num_classes).eval()
    return model, model_cfg, load(PostprocessConfig, config["panoptic"]["train"].get("postprocess", {}))


def profile(segmenter: Segmenter, paths: list[Path], rounds: int = 2) -> None:
    """Milliseconds per image of the forward and of the post-processing (images read and prepared up
    front), timed one after the other on each image, ``rounds`` times, medians over images and
    rounds (this machine's speed drifts by tens of percent from minute to minute: interleaving keeps
    the two comparable); then the post-processing's operators by their own CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from spino.data.io import read_image
    from spino.panoptic.predict import batch_outputs

    images = [read_image(p) for p in paths]
    prepared = [segmenter.prepare(i)[None] for i in images]
    post = segmenter.model.postprocess
    forward, seconds, tracking, results = [], [], [], []
    tracker = Tracker(segmenter.class_set, TrackConfig(), segmenter.model.device)  # the images as one sequence
    with torch.no_grad():
        segmenter.postprocess(
            batch_outputs(segmenter.model.network, prepared[0], segmenter.method, post.flip), images[0].shape[:2]
        )
        for _ in range(rounds):
            for x, image in zip(prepared, images):
                start = time.perf_counter()
                outputs = batch_outputs(segmenter.model.network, x, segmenter.method, post.flip)
                middle = time.perf_counter()
                results.append(segmenter.postprocess(outputs, image.shape[:2]))
                end = time.perf_counter()
                tracker.update(results[-1].panoptic)
                forward.append(middle - start)
                seconds.append(end - middle)
                tracking.append(time.perf_counter() - end)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for x, image in zip(prepared[:10], images):
                segmenter.postprocess(
                    batch_outputs(segmenter.model.network, x, segmenter.method, post.flip), image.shape[:2]
                )
    things = sum(s.is_thing for r in results for s in r.segments) / len(results)
    f, s, t = float(np.median(forward)), float(np.median(seconds)), float(np.median(tracking))
    print(
        f"per image ({images[0].shape[1]}x{images[0].shape[0]}, {things:.1f} thing segments, median of {len(forward)}): "
        f"forward {1000 * f:.1f} ms, post-processing {1000 * s:.1f} ms ({s / f:.2f}x the forward); the Segmenter "
        f"call {(f + s) / f:.2f}x the forward (target <= 1.25); tracking {1000 * t:.1f} ms more "
        f"(+{100 * t / (f + s):.1f} % of the call; target <= 5 %)"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--size", type=int, nargs=2, default=(512, 1024), help="image height and width")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--model", type=Path, help="a trained model file (default: the mini architecture, random heads)")
    p.add_argument("--profile", action="store_true", help="post-processing against the forward, and its operators")
    p.add_argument("--image-folder", type=Path, help="real images to segment (default: synthetic PNGs)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.image_folder:
            paths = sorted(args.image_folder.rglob("*.png"))[: args.images]
        else:
            paths = write_images(tmp / "images", args.images, tuple(args.size))
        if args.model:
            models = {"eager": args.model}
            model, class_set, post = load_model(args.model, torch.device("cpu"))
            model_cfg = model.cfg
        else:
            (model, model_cfg, post), class_set = untrained_mini_model(), CITYSCAPES_19
            models = {"eager": tmp / "model.pt"}
            save_model(models["eager"], model, model_cfg, class_set, post)
        if args.profile:
            profile(Segmenter.from_checkpoint(models["eager"], device="cpu"), paths)
        if not args.no_onnx:
            models["onnx"] = tmp / "model.onnx"
            export_onnx(model, class_set, post, models["onnx"])
        print(
            f"{args.images} images of {args.size[1]}x{args.size[0]}, model input {model_cfg.input_size[1]}x"
            f"{model_cfg.input_size[0]} ({model_cfg.instance}), threads {torch.get_num_threads()}"
        )
        for runtime, path in models.items():
            segmenter = Segmenter.from_checkpoint(path, device="cpu")
            for batch_size in args.batch_sizes:
                reset_peak_rss()
                few = whole_command(segmenter, paths[:20], batch_size, tmp / f"few-{runtime}-{batch_size}")
                rss_few = peak_rss_gib()
                total = whole_command(segmenter, paths, batch_size, tmp / f"all-{runtime}-{batch_size}")
                rss_all = peak_rss_gib()
                forward = forward_only(segmenter, paths, batch_size)
                model = model_alone(segmenter, paths, batch_size)
                n = len(paths)
                print(
                    f"{runtime:<6} batch {batch_size}: segment {n / total:.2f} images/s, forward alone "
                    f"{n / forward:.2f} images/s, ratio {total / forward:.2f} (target <= 1.25); forward and "
                    f"post-processing alone {n / model:.2f} images/s, ratio {total / model:.2f}; "
                    f"20 images {20 / few:.2f} images/s; peak RSS {rss_few:.2f} GiB after 20, {rss_all:.2f} GiB "
                    f"after {n} ({100 * (rss_all / rss_few - 1):+.1f} %)"
                )


if __name__ == "__main__":
    main()
