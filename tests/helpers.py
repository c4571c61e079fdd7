"""Small builders shared by tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np

from spino.classes import ClassSet
from spino.encoding import semantic_of
from spino.store import LabelStore, create_store


def store_from_maps(
    path: Path, ids: list[str], maps: list[np.ndarray], class_set: ClassSet, per_shard: int = 3, image_paths: list[str] | None = None
) -> LabelStore:
    """A complete store holding the given panoptic maps (and the paths of their images, if given)."""
    h, w = maps[0].shape
    store = create_store(path, ids, h, w, class_set, per_shard, extra_attrs={"image_paths": image_paths} if image_paths else None)
    for i in range(store.num_shards):
        shard = store.shard(i)
        pan = np.stack(maps[shard.start : shard.stop])
        store.write_shard(i, semantic_of(pan), pan)
    store.finalize()
    return store


STOP_HOOK = Path(__file__).parent / "stop_hook"


def kill_during_store_write(command: list[str], writes: int = 1) -> None:
    """Run a real spino command, stop it right after its ``writes``-th array write into a store
    (tests/stop_hook/sitecustomize.py), then kill -9 it there, as a crash or OOM kill would."""
    env = {**os.environ, "SPINO_TEST_STOP_AFTER_WRITES": str(writes),
           "PYTHONPATH": os.pathsep.join([str(STOP_HOOK), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the process ended before its store write: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
