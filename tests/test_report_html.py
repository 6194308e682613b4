"""The demo's index.html is real HTML: tables, captioned figures, parameters, escaped text, readable at 1280 px."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets import synthetic
from soundanomaly.demo import run_demo

pytestmark = pytest.mark.tf
ODD_NAME = "fans <b>&amp; 'x'"  # markup-like characters in the data folder name must come out as text


class _Page(HTMLParser):
    """Collects tables (caption, header cells, rows), figures (img src/alt, caption) and all visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict[str, object]] = []
        self.figures: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._head_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._stack.append(tag)
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class"), "caption": "", "head": [], "rows": []})
        elif tag == "tr":
            self._row = []
            self._head_row = "thead" in self._stack
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figure":
            self.figures.append({"src": "", "alt": "", "caption": ""})
        elif tag == "img" and self.figures and "figure" in self._stack:
            self.figures[-1].update(src=dict(attrs).get("src") or "", alt=dict(attrs).get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop() != tag:
            pass
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            if tag == "th":
                self.tables[-1]["head"].append(self._row[-1])  # type: ignore[union-attr]
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if "td" in self.tags[-len(self._row) - 1 :] or (any(self._row) and "thead" not in self._stack):
                self.tables[-1]["rows"].append(self._row)  # type: ignore[union-attr]
            self._row = None

    def handle_data(self, data: str) -> None:
        if "style" in self._stack or "title" in self._stack:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if "caption" in self._stack and self.tables:
            self.tables[-1]["caption"] = str(self.tables[-1]["caption"]) + data
        if "figcaption" in self._stack and self.figures:
            self.figures[-1]["caption"] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("html")
    data = synthetic.write_dataset(
        base / ODD_NAME, ids=[0, 2], n_normal=10, n_abnormal=3, duration=2.0, seed=3, progress=False
    )
    return run_demo(base / "report", data=data, epochs=1, cache_dir=base / "cache", progress=False).out


def _parse(report: Path) -> tuple[str, _Page]:
    raw = (report / "index.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(raw)
    page.close()
    return raw, page


def test_index_is_html_with_tables_figures_and_parameters(report: Path) -> None:
    raw, page = _parse(report)
    assert raw.lstrip().lower().startswith("<!doctype html>")
    assert "pre" not in page.tags  # no Markdown dumped in a <pre>
    text = " ".join(page.text)
    assert "|---" not in raw and "| ---" not in raw and "---:|" not in raw  # no Markdown table syntax
    assert "{'" not in text and "': " not in text  # no Python dict repr
    tables = {t["class"]: t for t in page.tables}
    assert {"results", "groups", "params"} <= set(tables)
    results = tables["results"]
    for column in ("detector", "precision", "recall", "F1", "AUC", "pAUC"):
        assert column in results["head"]  # type: ignore[operator]
    assert len(results["rows"]) >= 3  # type: ignore[arg-type]
    assert all(len(row) == len(results["head"]) for row in results["rows"])  # type: ignore[arg-type, union-attr]
    assert results["caption"]
    group_names = [row[0] for row in tables["groups"]["rows"]]  # type: ignore[union-attr]
    assert any("id_00" in name for name in group_names) and any("id_02" in name for name in group_names)
    params = {row[0]: row[1] for row in tables["params"]["rows"]}  # type: ignore[union-attr]
    assert params["epochs"] == "1" and params["seed"] == "0" and "target_fpr" in params["threshold rule"]
    assert params["autoencoder.hidden"] == "64, 64, 8, 64, 64"  # a list shown as text, not a repr
    # every figure: an existing PNG, alt text, and a caption
    assert len(page.figures) >= 8
    for figure in page.figures:
        assert (report / figure["src"]).is_file(), figure
        assert figure["caption"].strip() and figure["alt"].strip()


def test_text_is_escaped(report: Path) -> None:
    raw, page = _parse(report)
    assert ODD_NAME not in raw  # the raw markup never reaches the page unescaped
    assert "&lt;b&gt;&amp;amp;" in raw
    assert any(ODD_NAME in chunk for chunk in page.text)  # and reads back as the folder's name
    assert "b" not in page.tags


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_page_renders_in_a_headless_browser_at_1280px(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome on PATH (apt-get install chromium)")
    from PIL import Image

    shot = tmp_path / "page.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (report / "index.html").resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "the browser wrote no screenshot"
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    ink = pixels < 200
    assert ink.mean() > 0.02  # text, tables and images were drawn: not a blank page
    assert pixels.std() > 20
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.min() >= 8 and columns.max() <= 1280 - 8  # content sits inside the 1280 px window, with margins
    assert ink[:, 640:].mean() > 0.01  # the two-column figure grid and the tables use the width
