"""Which torch device a job runs on: the one place that resolves ``auto``."""

from __future__ import annotations

import os


def resolve_device(name: str) -> str:
    """``auto`` is this process's GPU when there is one (``LOCAL_RANK``'s under torchrun), else the CPU;
    any other name (cpu, cuda, cuda:N) is taken as given."""
    if name != "auto":
        return name
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
