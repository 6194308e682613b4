"""The demo's report pages: ``index.html`` (tables, captioned figures, escaped text) and ``report.md``.

:func:`soundanomaly.demo.run_demo` computes the numbers and writes the
figures; this module only lays them out. Every text from the data (folder
names, notes, parameters) is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

from soundanomaly.calibration import Calibration
from soundanomaly.datasets import ClipSet
from soundanomaly.detectors import AutoencoderDetector
from soundanomaly.evaluation import EvaluationReport, Metrics

__all__ = ["FIGURES", "ReportInputs", "html_page", "markdown", "summary_rows"]


@dataclass
class ReportInputs:
    """Everything the report shows (what :func:`soundanomaly.demo.run_demo` computed)."""

    source: str
    split_sizes: dict[str, int]
    parameters: dict[str, Any]
    detector: AutoencoderDetector
    calibration: Calibration
    scores: np.ndarray[Any, Any]
    test: ClipSet
    report: EvaluationReport
    optimistic: EvaluationReport
    test_tuned: Calibration
    extra: list[tuple[str, EvaluationReport]]
    timings: dict[str, float]
    notes: list[str]


#: The report's figures: (file name, caption), in page order.
FIGURES: list[tuple[str, str]] = [
    ("score_histogram.png", "Anomaly scores of the test clips per class; the dashed line is the threshold."),
    ("roc.png", "ROC curve, anomaly as the positive class; the shaded band is the pAUC region (FPR ≤ 0.1)."),
    ("confusion_matrix.png", "Confusion matrix of the test clips at the calibrated threshold."),
    ("threshold_sweep.png", "Each test clip's score (x: clip index), coloured by its true class."),
    (
        "errors_vs_threshold.png",
        "False alarms and missed faults for every threshold on the test set (the reference's test-tuned sweep).",
    ),
    ("waveforms.png", "Waveform of one normal and one abnormal test clip, same amplitude scale."),
    ("stft_first_64ms.png", "Magnitude spectrum of the first 64 ms of the two clips."),
    ("spectrogram_normal.png", "Spectrogram (dB) of the normal clip."),
    ("spectrogram_abnormal.png", "Spectrogram (dB) of the abnormal clip."),
]


def summary_rows(r: ReportInputs) -> list[tuple[str, str, EvaluationReport]]:
    """One (detector, threshold description, report) row per detector and threshold."""
    rows = [
        ("autoencoder (reference)", "calibrated on normal validation clips (honest)", r.report),
        ("autoencoder (reference)", "tuned on the test set (reference recipe, optimistic)", r.optimistic),
    ]
    rows += [(label, "calibrated on normal validation clips", rep) for label, rep in r.extra]
    return [(name, f"{how}: {rep.threshold:.4g}", rep) for name, how, rep in rows]


def markdown(r: ReportInputs) -> str:
    """``report.md``: the summary table, the per-group table and the notes."""
    lines = [
        "# soundanomaly demo report",
        "",
        f"Data: {r.source}. Split: "
        + ", ".join(f"{k} {v}" for k, v in r.split_sizes.items())
        + " clips. Anomaly is the positive class.",
        f"Threshold: {r.detector.threshold_:.6g} ({r.parameters['threshold rule']}).",
        "",
        "| detector | threshold | precision | recall | F1 | accuracy | AUC | pAUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, how, rep in summary_rows(r):
        m = rep.overall
        lines.append(
            f"| {name} | {how} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.accuracy:.3f} "
            f"| {m.roc_auc:.3f} | {m.pauc:.3f} |"
        )
    lines += ["", "## Autoencoder per machine id and SNR", "", r.report.to_markdown(), ""]
    if r.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in r.notes], ""]
    lines.append("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items()))
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f23; line-height: 1.45;
       max-width: 1180px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.reference td { font-weight: 600; }
table.params td:first-child { font-family: ui-monospace, monospace; white-space: nowrap; }
.figures { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid #d0d7de; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9em; color: #57606a; margin-top: 6px; }
.notes li { color: #7d4e00; }
code { background: #f6f8fa; padding: 0 4px; }
"""


def _num(value: float | int) -> str:
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    return f'<td class="num">{"n/a" if np.isnan(value) else f"{value:.3f}"}</td>'


def _metric_cells(m: Metrics) -> str:
    return "".join(
        _num(v) for v in (m.n_clips, m.n_anomalies, m.tp, m.fp, m.tn, m.fn, m.precision, m.recall, m.f1, m.accuracy)
    ) + "".join(_num(v) for v in (m.roc_auc, m.pauc))


_METRIC_HEAD = (
    "<th>clips</th><th>anomalies</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th><th>precision</th>"
    "<th>recall</th><th>F1</th><th>accuracy</th><th>AUC</th><th>pAUC</th>"
)


def html_page(r: ReportInputs) -> str:
    """``index.html``: one self-contained page (inline CSS), every data text escaped."""
    e = html.escape
    reference = ' class="reference"'
    summary = "\n".join(
        f"<tr{reference if i == 0 else ''}><td>{e(name)}</td><td>{e(how)}</td>{_metric_cells(rep.overall)}</tr>"
        for i, (name, how, rep) in enumerate(summary_rows(r))
    )
    group_rows = [("all test clips", r.report.overall), *sorted(r.report.groups.items())]
    groups = "\n".join(f"<tr><td>{e(name)}</td>{_metric_cells(m)}</tr>" for name, m in group_rows)
    params = "\n".join(f"<tr><td>{e(str(k))}</td><td>{e(_plain(v))}</td></tr>" for k, v in r.parameters.items())
    split = "".join(f"<tr><td>{e(k)}</td>{_num(v)}</tr>" for k, v in r.split_sizes.items())
    timings = "".join(f"<tr><td>{e(k)}</td>{_num(round(v, 1))}</tr>" for k, v in r.timings.items())
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(caption)}" loading="lazy"><figcaption>{e(caption)}</figcaption></figure>'
        for name, caption in FIGURES
    )
    notes = ""
    if r.notes:
        items = "".join(f"<li>{e(note)}</li>" for note in r.notes)
        notes = f'<h2 id="notes">Notes</h2>\n<ul class="notes">{items}</ul>'
    normal_positive = ""
    if r.report.normal_positive:
        np_ = r.report.normal_positive
        normal_positive = (
            f"<p>With normal as the positive class (as the reference blog reported): precision "
            f"{np_['precision']:.3f}, recall {np_['recall']:.3f}, F1 {np_['f1']:.3f}.</p>"
        )
    threshold = r.detector.threshold_
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soundanomaly demo report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>soundanomaly demo report</h1>
<p>Data: {e(r.source)}. <strong>Anomaly is the positive class</strong> in every metric and plot. The autoencoder's
threshold is <strong>{threshold:.6g}</strong>: {e(r.parameters["threshold rule"])}.</p>

<h2 id="results">Results on the test clips</h2>
<table class="results">
<caption>One row per detector and threshold. The test-tuned row has seen the test labels: an upper bound.</caption>
<thead><tr><th>detector</th><th>threshold</th>{_METRIC_HEAD}</tr></thead>
<tbody>
{summary}
</tbody>
</table>
{normal_positive}

<h2 id="groups">Autoencoder per machine id and SNR</h2>
<table class="groups">
<caption>Calibrated threshold {threshold:.6g}; pAUC over false-positive rate ≤ {r.report.max_fpr:g}.</caption>
<thead><tr><th>group</th>{_METRIC_HEAD}</tr></thead>
<tbody>
{groups}
</tbody>
</table>

<h2 id="figures">Figures</h2>
<div class="figures">
{figures}
</div>
{notes}
<h2 id="parameters">Run parameters</h2>
<table class="params">
<caption>What this report was made with.</caption>
<thead><tr><th>parameter</th><th>value</th></tr></thead>
<tbody>
{params}
</tbody>
</table>
<table class="split">
<caption>Clips per part of the split</caption>
<thead><tr><th>part</th><th>clips</th></tr></thead>
<tbody>{split}</tbody>
</table>
<table class="timings">
<caption>Seconds per step</caption>
<thead><tr><th>step</th><th>seconds</th></tr></thead>
<tbody>{timings}</tbody>
</table>

<h2 id="files">Files</h2>
<ul>
<li><a href="metrics.json">metrics.json</a>: every number above, machine-readable.</li>
<li><a href="scores.csv">scores.csv</a>: one row per test clip (path, group, label, score, predicted).</li>
<li><a href="report.md">report.md</a>: this summary as Markdown.</li>
<li><code>model/</code>: the trained autoencoder; load it with <code>soundanomaly.load_model("model")</code>
or score new clips with <code>soundanomaly score model CLIPS...</code>.</li>
</ul>
</body>
</html>
"""


def _plain(value: Any) -> str:
    """A parameter value as text a person reads (no Python reprs of containers)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "(none)"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
