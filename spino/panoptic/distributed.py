"""One process per GPU: torchrun's launch, its process group, and what the ranks share."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist

from spino.devices import resolve_device


def relaunch_under_torchrun(gpus: int, argv: list[str]) -> None:
    """With ``gpus`` > 1 and outside torchrun: run this ``spino`` command again under torchrun, one
    process per GPU of the node (each with ``--gpus 1``), and exit with its status. Otherwise return."""
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        return
    argv = list(argv)
    argv[argv.index("--gpus") + 1] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "spino",
        *argv,
    ]
    raise SystemExit(subprocess.call(cmd))


class Distributed:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) or a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(resolve_device(device))
        if self.world > 1:
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(the model, what a training step calls): DDP over the ranks when there are several, with
        batch statistics over all GPUs (SyncBatchNorm is CUDA-only)."""
        if self.world == 1:
            return model, model
        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over the ranks (unchanged in a single process)."""
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return values

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()
