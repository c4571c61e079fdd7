"""What a CUDA run needs, checked on the CPU: which GPU each job takes, the torchrun ranks' devices
and threads, autocast reaching the backbone, fp32 head outputs, SyncBatchNorm leaving the frozen
backbone alone, the collective timeout and the fp16 fallback. benchmarks/gpu_check.sh runs the rest
on a real GPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from spino import devices
from spino.backbone import Backbone, BackboneSpec
from spino.panoptic.distributed import COLLECTIVE_TIMEOUT, process_group_options, sync_batchnorm, torchrun_argv
from spino.panoptic.instances import INSTANCE_METHODS
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.train import Precision

from helpers import tiny_model

CLAIM = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from spino.devices import claim_gpus\n"
    "print(claim_gpus(1, ['GPU-a', 'GPU-b'], Path(sys.argv[1]), poll_s=0.05)[0], flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def claimer(folder: Path, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(folder), str(hold_s)], stdout=subprocess.PIPE, text=True)


def test_concurrent_jobs_claim_different_gpus_and_a_killed_job_frees_its_own(tmp_path: Path) -> None:
    """Two jobs at once get GPUs 0 and 1 of two; a third waits until one of them is kill -9ed and
    then takes the GPU that one held."""
    first = claimer(tmp_path, 60)
    took = int(first.stdout.readline())
    second = claimer(tmp_path, 60)
    assert {took, int(second.stdout.readline())} == {0, 1}
    third = claimer(tmp_path, 0)
    time.sleep(1.0)
    assert third.poll() is None, "the third job took a GPU that two others hold"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    freed = int(third.stdout.readline())
    assert third.wait(timeout=30) == 0
    second.kill()
    second.wait()
    assert freed == took


@pytest.fixture
def two_fake_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """torch.cuda as a machine with two GPUs shows it (the devices made current are recorded)."""
    current: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=f"uuid-{i}"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(str(d)))
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    held: list = []
    monkeypatch.setattr(devices, "_held", held)
    yield current
    for handle in held:
        handle.close()


def test_each_auto_job_takes_a_gpu_no_other_job_holds(two_fake_gpus: list[str]) -> None:
    assert devices.resolve_device("auto") == "cuda:0"
    assert devices.resolve_device("cuda") == "cuda:1"  # GPU 0 is held (by this process, as by another job)
    assert devices.resolve_device("cuda:0") == "cuda:0"  # an explicit index is taken as given
    assert devices.resolve_device("cpu") == "cpu"
    assert two_fake_gpus == ["cuda:0", "cuda:1", "cuda:0"]  # each made current: no stray context on GPU 0


def test_a_torchrun_rank_takes_its_local_rank_gpu(two_fake_gpus: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert devices.resolve_device("cuda") == "cuda:1"
    assert devices.resolve_device("cuda:0") == "cuda:1"  # not every rank on GPU 0 ("Duplicate GPU detected")
    assert devices.resolve_device("auto") == "cuda:1"


def test_torchrun_ranks_share_the_jobs_threads() -> None:
    argv = ["--threads", "8", "train-panoptic", "--gpus", "2", "--device", "auto"]
    assert torchrun_argv(argv, 2, 8) == ["--threads", "4", "train-panoptic", "--gpus", "1", "--device", "auto"]
    assert torchrun_argv(["train-panoptic", "--gpus", "4"], 4, 16) == [
        "--threads",
        "4",
        "train-panoptic",
        "--gpus",
        "1",
    ]
    assert torchrun_argv(["train-panoptic", "--gpus", "4"], 4, 2)[:2] == ["--threads", "1"]


def tiny_vit_model(instance: str) -> PanopticModel:
    cfg = ModelConfig.from_dict(
        tiny_model((32, 64), instance=instance),
        {"name": "vit_tiny_patch16_224", "weights": "none", "out_indices": [-1]},
    )
    return PanopticModel(cfg, 5)


@pytest.mark.parametrize("instance", sorted(INSTANCE_METHODS))  # every registered method, as timm tests list_models()
def test_autocast_reaches_the_backbone_and_head_outputs_stay_fp32(instance: str) -> None:
    """Under a training step's autocast (bf16 here on the CPU, as on a GPU) the frozen ViT's blocks
    compute in bf16 although backbone.dtype (auto) is fp32 on the CPU, and every output of the model is fp32."""
    model = tiny_vit_model(instance)
    assert model.backbone.spec.dtype == "auto"
    seen: list[torch.dtype] = []
    model.backbone.model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    images = torch.rand(2, 3, 32, 64) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
    assert seen == [torch.bfloat16]
    assert {k: v.dtype for k, v in outputs.items()} == {k: torch.float32 for k in outputs}
    model(images)
    assert seen[-1] == torch.float32  # outside autocast: fp32, as asked


def test_backbone_dtype_bfloat16_runs_in_bf16_without_an_outer_autocast() -> None:
    backbone = Backbone(BackboneSpec("vit_tiny_patch16_224", "none", (-1,), "bfloat16"))
    seen: list[torch.dtype] = []
    backbone.model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert backbone(torch.rand(1, 3, 32, 32) * 255).dtype == torch.float32 and seen == [torch.bfloat16]


def test_sync_batchnorm_converts_the_trainable_parts_and_leaves_the_backbone() -> None:
    """A pre-activation ResNet's BatchNormAct2d (norm + ReLU, not foldable into its convolution)
    stays as it is; every batch norm of the adapter, decoders and heads becomes a SyncBatchNorm."""
    from timm.layers import BatchNormAct2d

    cfg = ModelConfig.from_dict(
        tiny_model((32, 64)),
        {"name": "resnetv2_18", "weights": "none", "out_indices": [-1]},
    )
    model = PanopticModel(cfg, 5)
    before = [type(m) for m in model.backbone.modules()]
    assert BatchNormAct2d in before
    keys = list(model.state_dict())
    model = sync_batchnorm(model)
    assert [type(m) for m in model.backbone.modules()] == before
    rest = [m for name, m in model.named_modules() if not name.startswith("backbone")]
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in rest)
    assert not any(type(m) is torch.nn.BatchNorm2d for m in rest)
    assert list(model.state_dict()) == keys  # checkpoints keep their keys
    assert model.center_head is dict(model.named_children())["center_head"]  # the heads the forward uses


def test_collectives_wait_for_rank_zeros_validation_and_checkpoint() -> None:
    """NCCL's default (10 minutes) is shorter than rank 0's validation of 100 full-resolution images
    plus a checkpoint on a slow shared file system."""
    for device, backend in (("cuda:1", "nccl"), ("cpu", "gloo")):
        options = process_group_options(torch.device(device))
        assert options["backend"] == backend and options["timeout"] == COLLECTIVE_TIMEOUT
    assert COLLECTIVE_TIMEOUT.total_seconds() >= 30 * 60


def test_dtype_auto_is_bf16_where_the_gpu_computes_it_natively_and_fp32_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    native = {"value": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native["value"])
    assert devices.inference_dtype("auto", "cuda:0") == torch.bfloat16  # A100, H100, H200
    assert devices.inference_dtype("float32", "cuda:0") is None
    native["value"] = False
    assert devices.inference_dtype("auto", "cuda:0") is None  # V100, T4: fp32, not emulated bf16
    assert devices.inference_dtype("auto", "cpu") is None
    assert devices.inference_dtype("bfloat16", "cpu") == torch.bfloat16  # asked for: everywhere


def test_mixed_precision_falls_back_to_fp16_where_bf16_is_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    native = {"value": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native["value"])
    assert devices.amp_dtype("cuda:0") == torch.bfloat16  # A100, H100, H200
    native["value"] = False
    assert devices.amp_dtype("cuda:0") == torch.float16  # V100, T4
    assert devices.amp_dtype("cpu") is None
    precision = Precision.of(torch.device("cpu"), amp=True)
    assert precision.dtype is None and not precision.scaler.is_enabled()


@pytest.mark.slow
def test_gpu_check_runs_green_at_tiny_sizes_on_the_cpu() -> None:
    """benchmarks/gpu_check.sh --cpu: the script the first GPU runs, on the same code paths."""
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--cpu"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=Path(__file__).parent.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for method in ("center_offset", "solov2"):
        assert (
            f"{method}: ViT MLPs compute in ['float32']; saved tensors on {{'model.pt': {{'cpu'}}, 'last.pt': {{'cpu'}}}}; losses finite: True"
            in out
        )
    assert "gloo, timeout 1:00:00" in out and "flip True:" in out and "batch 4: " in out
    tf32 = out.split("float32, matmul precision high, 1 tile per backbone call: ")[1].split("\n")[0]
    assert tf32.endswith("on 100.00 % of semantic pixels, 100.00 % of panoptic"), tf32  # no TF32 on a CPU
    for tiles in ("1 tile", "4 tiles"):
        bf16 = out.split(f"bfloat16, matmul precision highest, {tiles} per backbone call: ")[1]
        agree = float(bf16.split("agrees with plain fp32 on ")[1].split(" %")[0])
        assert 80 < agree < 100, agree  # the same heads in both precisions: rounding moves only near-ties
    for kind in ("semantic", "boundary", "embedding"):
        assert f"{kind} head: 4 steps in" in out
    assert out.rstrip().endswith("gpu check done (cpu, tiny sizes)")


@pytest.mark.slow
def test_gpu_checks_end_to_end_section_runs_the_workflow_through_its_spino_shim(tmp_path: Path) -> None:
    """benchmarks/gpu_check.sh --e2e-cpu: the path of the GPU's end-to-end call (benchmarks/scale.py,
    Snakemake under profiles/default) at the tiny run's sizes on 20 images. (Where Python's folder has
    no `spino`, as on the lent machine, the rules run the script's shim: checked by hand in a venv of
    the machine's packages and the wheels --fetch-wheels gets, docs/results.md.)"""
    env = {**os.environ, "PYTHON": sys.executable, "E2E_WORK": str(tmp_path / "e2e")}
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--e2e-cpu"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line[:1].isalpha()}
    assert rows["pseudo_label"][0] == "5" and rows["train_panoptic"][0] == "1", result.stdout  # 20 images, 4 a shard
    assert (tmp_path / "e2e" / "n20" / "results" / "scale-20" / "report" / "report.html").is_file()
