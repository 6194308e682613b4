"""A tiny dependency-free progress bar written to stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing ``desc [####....] k/n  rate/s`` on stderr.

    Draws only when ``enabled`` and stderr is a terminal, or at the end of the
    run otherwise (so logs get one summary line, not thousands).
    """
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    tty = sys.stderr.isatty()
    start = time.perf_counter()
    last = 0.0
    count = 0
    for count, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if tty and (now - last > 0.1 or count == total):
            last = now
            _draw(desc, count, total, now - start, end="")
    _draw(desc, count, total, time.perf_counter() - start, end="\n", prefix="\r" if tty else "")


def _draw(desc: str, count: int, total: int | None, elapsed: float, *, end: str, prefix: str = "\r") -> None:
    rate = count / elapsed if elapsed > 0 else 0.0
    if total:
        filled = int(30 * count / total)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {count}/{total}"
    else:
        bar = f"{count}"
    sys.stderr.write(f"{prefix}{desc} {bar} {rate:.1f}/s {elapsed:.1f}s{end}")
    sys.stderr.flush()
