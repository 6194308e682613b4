"""A tiny dependency-free progress bar written to stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["ProgressBar", "progress"]


class ProgressBar:
    """One bar for a whole run, advanced by :meth:`update` (e.g. once per chunk of clips).

    Draws ``desc [####....] k/n  rate/s`` on stderr when it is a terminal (at
    most ten times a second), and one summary line at :meth:`close` otherwise,
    so logs get one line, not thousands.

    Examples
    --------
    >>> bar = ProgressBar(total=3, desc="scoring", enabled=False)
    >>> bar.update(2); bar.update(1); bar.close()
    >>> bar.count
    3

    """

    def __init__(self, *, total: int | None = None, desc: str = "", enabled: bool = True) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.count = 0
        self._tty = enabled and sys.stderr.isatty()
        self._start = time.perf_counter()
        self._last = 0.0
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items."""
        self.count += n
        if not self._tty:
            return
        now = time.perf_counter()
        if now - self._last > 0.1 or self.count == self.total:
            self._last = now
            _draw(self.desc, self.count, self.total, now - self._start, end="")

    def close(self) -> None:
        """Finish the bar (one final line); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            _draw(
                self.desc,
                self.count,
                self.total,
                time.perf_counter() - self._start,
                end="\n",
                prefix="\r" if self._tty else "",
            )

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing one :class:`ProgressBar` on stderr."""
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with ProgressBar(total=total, desc=desc) as bar:
        for item in items:
            yield item
            bar.update()


def _draw(desc: str, count: int, total: int | None, elapsed: float, *, end: str, prefix: str = "\r") -> None:
    rate = count / elapsed if elapsed > 0 else 0.0
    if total:
        filled = int(30 * min(count, total) / total)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {count}/{total}"
    else:
        bar = f"{count}"
    sys.stderr.write(f"{prefix}{desc} {bar} {rate:.1f}/s {elapsed:.1f}s{end}")
    sys.stderr.flush()
