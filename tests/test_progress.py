"""Progress bars: tqdm where someone watches, one summary line in logs."""

from __future__ import annotations

import pytest

from soundanomaly import _progress
from soundanomaly._progress import ProgressBar, progress


def test_logs_get_one_summary_line(capfd: pytest.CaptureFixture[str]) -> None:
    assert list(progress(range(5), desc="clips")) == [0, 1, 2, 3, 4]
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "clips [" in err and "5/5" in err and "\r" not in err


def test_a_watched_stderr_gets_a_tqdm_bar(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_progress, "_watched", lambda: True)
    with ProgressBar(total=4, desc="scoring") as bar:
        for _ in range(4):
            bar.update()
    assert bar.count == 4
    err = capfd.readouterr().err
    assert "scoring" in err and "4/4" in err and "100%" in err  # tqdm's own format


def test_disabled_bars_write_nothing(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_progress, "_watched", lambda: True)
    bar = ProgressBar(total=2, desc="quiet", enabled=False)
    bar.update(2)
    bar.close()
    bar.close()  # twice is fine
    assert capfd.readouterr().err == ""


def test_no_summary_line_after_an_error(capfd: pytest.CaptureFixture[str]) -> None:
    def run() -> None:
        with ProgressBar(total=3, desc="scoring") as bar:
            bar.update()
            raise RuntimeError("unreadable clip")

    with pytest.raises(RuntimeError):
        run()
    assert capfd.readouterr().err == ""  # the error's one line is all the user sees
