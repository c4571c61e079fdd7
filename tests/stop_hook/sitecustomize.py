"""Loaded at start-up by the real ``spino`` processes the kill tests start (their PYTHONPATH names
this folder). With SPINO_TEST_STOP_AFTER_WRITES=N set, the process stops itself (SIGSTOP) right
after its N-th write of label data into a zarr array, so that the test can ``kill -9`` it at that
exact point of its store write. Without the variable it does nothing.
"""

import os
import signal

_after = int(os.environ.get("SPINO_TEST_STOP_AFTER_WRITES", "0"))

if _after:
    import zarr

    _setitem = zarr.Array.__setitem__
    _writes = 0

    def _stop_after_writes(self, selection, value):
        global _writes
        _setitem(self, selection, value)
        if not self.path.endswith("shard_done"):
            _writes += 1
            if _writes == _after:
                os.kill(os.getpid(), signal.SIGSTOP)

    zarr.Array.__setitem__ = _stop_after_writes
