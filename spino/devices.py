"""Which torch device a job runs on: the one place that resolves ``auto`` and picks a GPU.

Local GPU jobs run side by side (``snakemake --resources gpu=N``) and Snakemake gives them no GPU
index, so each job that asks for ``auto`` or ``cuda`` claims a free GPU itself: an advisory lock on
one file per GPU (named by the GPU's UUID, so two jobs that see different physical GPUs as index 0,
as under SLURM's device cgroups, never wait on each other), held until the process ends. The kernel
drops the lock when a job dies, ``kill -9`` included. Under torchrun every rank takes
``cuda:{LOCAL_RANK}`` whatever it was given; an explicit ``cuda:N`` is taken as given.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from spino.errors import InputError
from spino.progress import log

if TYPE_CHECKING:
    import torch

LOCK_DIR_ENV = "SPINO_GPU_LOCKS"  # where the per-GPU lock files live (default: a folder in the temp dir)
_held: list[IO] = []  # the claimed GPUs' lock files: open for the life of the process


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"spino-gpu-locks-{os.getuid()}")


def claim_gpus(count: int, keys: list[str], folder: Path | None = None, poll_s: float = 2.0) -> list[int]:
    """Indices into ``keys`` (one per visible GPU) of ``count`` GPUs no other spino process holds,
    locked until this process ends; waits while fewer are free. All or none are taken at each try,
    so two jobs that each need two GPUs cannot hold one each and wait for ever."""
    if count > len(keys):
        raise InputError(f"{count} GPU(s) asked for, but this machine shows {len(keys)}")
    folder = folder or lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        taken: list[tuple[int, IO]] = []
        for index, key in enumerate(keys):
            handle = open(folder / f"{key}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            taken.append((index, handle))
            if len(taken) == count:
                _held.extend(h for _, h in taken)
                return [i for i, _ in taken]
        for _, handle in taken:
            handle.close()
        if not waited:
            log(f"all free GPUs are held by other spino jobs ({len(keys)} visible, {count} needed): waiting")
            waited = True
        time.sleep(poll_s)


def gpu_keys() -> list[str]:
    """One stable name per visible GPU: its UUID."""
    import torch

    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [str(getattr(p, "uuid", i)) for i, p in enumerate(props)]


def resolve_device(name: str) -> str:
    """The device for ``name`` (auto, cpu, cuda, cuda:N): ``auto`` is the CPU without a GPU; ``auto``
    and ``cuda`` claim a free GPU; a torchrun rank takes its ``LOCAL_RANK``'s. A GPU chosen is made
    the current one, so that nothing else opens a context on GPU 0."""
    import torch

    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        return name
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise InputError(f"--device {name}: no CUDA GPU is visible here; use --device cpu (or auto)")
    if name != "cuda" and "LOCAL_RANK" not in os.environ and int(name[5:]) >= count:
        raise InputError(f"--device {name}: {count} GPU{'s' * (count > 1)} visible here (cuda:0..cuda:{count - 1})")
    if "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    elif name == "cuda":
        name = f"cuda:{claim_gpus(1, gpu_keys())[0]}"
    torch.cuda.set_device(name)
    return name


DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def check_device_name(name: str) -> str:
    """``name`` if it names a device spino runs on (also an argparse ``type``), else an InputError."""
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise InputError(f"--device {name}: expected {DEVICE_NAMES}")


def claim_visible_gpus(count: int) -> str:
    """For a launcher of ``count`` processes (torchrun): claim that many free GPUs and return the
    ``CUDA_VISIBLE_DEVICES`` that shows its children those only."""
    keys = gpu_keys()
    indices = claim_gpus(count, keys)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = visible.split(",") if visible else [str(i) for i in range(len(keys))]
    return ",".join(names[i] for i in indices)


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of mixed-precision training on ``device``: bf16 where the GPU computes it
    natively (Ampere and later), else fp16 (V100, T4: bf16 there is emulated or refused; fp16 needs
    a gradient scaler); None on the CPU, which trains in fp32."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    native = torch.cuda.is_bf16_supported(including_emulation=False)  # of the current GPU: resolve_device set it
    return torch.bfloat16 if native else torch.float16


def inference_dtype(setting: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of a frozen network's forward pass (``backbone.dtype``,
    ``pseudo_labels.head_dtype``) on ``device``: ``bfloat16`` always; ``float32`` none (fp32, or the
    caller's autocast); ``auto`` bf16 on a GPU that computes it natively (an H100 labelled 8x faster,
    99.95 % of pixels as in fp32, docs/results.md), none elsewhere (a CPU without native bf16 runs
    it slower than fp32)."""
    import torch

    if setting == "bfloat16":
        return torch.bfloat16
    if setting == "float32" or torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
