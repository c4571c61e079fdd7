"""One process per GPU: torchrun's launch, its process group, and what the ranks share."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from spino.devices import claim_visible_gpus, resolve_device

# How long a rank waits in a collective: longer than rank 0's validation of full-resolution images
# and its checkpoint write to a slow shared file system (NCCL's default, 10 minutes, is not).
COLLECTIVE_TIMEOUT = timedelta(minutes=60)


def torchrun_argv(argv: list[str], gpus: int, threads: int) -> list[str]:
    """The ``spino`` arguments of each rank: ``--gpus 1``, and ``--threads`` the node's share of one
    GPU (``threads`` // ``gpus``), so that the ranks do not each take every core."""
    argv = list(argv)
    argv[argv.index("--gpus") + 1] = "1"
    per_rank = str(max(1, threads // gpus))
    if "--threads" in argv:
        argv[argv.index("--threads") + 1] = per_rank
    else:
        argv = ["--threads", per_rank, *argv]
    return argv


def relaunch_under_torchrun(gpus: int, argv: list[str], device: str = "auto") -> None:
    """With ``gpus`` > 1 and outside torchrun: run this ``spino`` command again under torchrun, one
    process per GPU (free GPUs claimed for it, see spino.devices), and exit with its status.
    Otherwise return."""
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        return
    rank_argv = torchrun_argv(argv, gpus, torch.get_num_threads())
    env = dict(os.environ, OMP_NUM_THREADS=rank_argv[rank_argv.index("--threads") + 1])
    if device in ("auto", "cuda") and torch.cuda.is_available():
        env["CUDA_VISIBLE_DEVICES"] = claim_visible_gpus(gpus)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "spino",
        *rank_argv,
    ]
    raise SystemExit(subprocess.call(cmd, env=env))


def process_group_options(device: torch.device) -> dict:
    """``init_process_group``'s backend and collective timeout for ranks on ``device``."""
    return {"backend": "nccl" if device.type == "cuda" else "gloo", "timeout": COLLECTIVE_TIMEOUT}


def sync_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Batch statistics over all GPUs in the trainable parts; the frozen backbone keeps its own norms
    (a timm ``BatchNormAct2d`` turned into a plain SyncBatchNorm would lose its activation)."""
    for name, child in list(model.named_children()):
        if name != "backbone":
            setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return model


class Distributed:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) or a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(resolve_device(device))  # a rank's is cuda:LOCAL_RANK
        if self.world > 1:
            dist.init_process_group(**process_group_options(self.device))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(the model, what a training step calls): DDP over the ranks when there are several, with
        batch statistics over all GPUs (SyncBatchNorm is CUDA-only)."""
        if self.world == 1:
            return model, model
        if self.device.type == "cuda":
            model = sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over the ranks (unchanged in a single process)."""
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return values

    def barrier(self) -> None:
        """Wait for every rank (after rank 0's validation and checkpoint): the others wait here, in a
        collective whose timeout allows for it, not inside the next step's gradient all-reduce."""
        if self.world > 1:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()
