"""Progress bars: :mod:`tqdm` where someone watches (a terminal, a Jupyter notebook), one summary line in logs.

``tqdm.auto`` draws a widget in a notebook and a text bar in a terminal. When
stderr is neither (a log file, CI, a pipe), a bar would write thousands of
carriage-return updates; there the run ends with one summary line instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["ProgressBar", "progress"]


def _watched() -> bool:
    """Whether a person sees stderr live: a terminal, or a Jupyter kernel (its output cell)."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class ProgressBar:
    """One bar for a whole run, advanced by :meth:`update` (e.g. once per chunk of clips).

    A :mod:`tqdm` bar (``tqdm.auto``: a widget in notebooks) when stderr is
    watched; otherwise one summary line ``desc [####....] k/n  rate/s`` at
    :meth:`close`, so logs get one line, not thousands.

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
        self._start = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if enabled and _watched():
            from tqdm.auto import tqdm  # type: ignore[import-untyped]

            self._bar = tqdm(total=total, desc=desc, file=sys.stderr, mininterval=0.1, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Finish the bar (one final line); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            _summary(self.desc, self.count, self.total, time.perf_counter() - self._start)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and self._bar is None:  # an error ends the run: its message, not a summary line
            self._closed = True
        self.close()


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing one :class:`ProgressBar` on stderr.

    Examples
    --------
    >>> list(progress(range(3), desc="clips", enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with ProgressBar(total=total, desc=desc) as bar:
        for item in items:
            yield item
            bar.update()


def _summary(desc: str, count: int, total: int | None, elapsed: float) -> None:
    rate = count / elapsed if elapsed > 0 else 0.0
    if total:
        filled = int(30 * min(count, total) / total)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {count}/{total}"
    else:
        bar = f"{count}"
    sys.stderr.write(f"{desc} {bar} {rate:.1f}/s {elapsed:.1f}s\n")
    sys.stderr.flush()
