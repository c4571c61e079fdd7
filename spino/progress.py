"""Progress bars for long loops: live on a terminal, periodic lines in a rule's log file."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    interactive = sys.stderr.isatty()
    return iter(
        tqdm(
            items,
            desc=desc,
            total=total,
            unit=unit,
            file=sys.stderr,
            mininterval=0.2 if interactive else 30.0,
            ascii=not interactive,
            dynamic_ncols=interactive,
        )
    )


def log(message: str) -> None:
    """A timestamped line on stderr (the job's log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
