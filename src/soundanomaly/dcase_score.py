"""The DCASE Challenge Task 2 official score, and the submission files it is computed from.

Definition (DCASE 2022–2024 task descriptions, and the organisers' evaluator
``dcase2023_task2_evaluator.py``), for each machine type *m* and section *n*:

* ``AUC(m, n, d)`` for each domain *d* in {source, target}: the normal test clips
  of domain *d* against **all** anomalous test clips of the section (both domains);
* ``pAUC(m, n)``: over false-positive rates ``[0, p]``, p = 0.1, on all test clips
  of the section (both domains);
* the official score: the **harmonic mean** of every ``AUC(m, n, d)`` and every
  ``pAUC(m, n)`` over all machine types, sections and domains (each value floored
  at machine epsilon, as the evaluator does).

The 2021 edition scored each (section, domain) test set on its own (normals
*and* anomalies of that domain) with both AUC and pAUC; 2020 had no domains
and scored each machine id. ``edition=2021`` / ``edition=2020`` reproduce those.

pAUC: the organisers' evaluators call scikit-learn's
``roc_auc_score(y, s, max_fpr=0.1)``, which applies McClish's standardisation
(random = 0.5); that is the default here (``pauc="mcclish"``), so numbers match
the published tables. ``pauc="normalized"`` gives the task description's
formula, the area up to p divided by p (random = p/2), which is
:func:`soundanomaly.evaluation.partial_auc`.

Scores are written in the submission format with :func:`write_submission`:
``anomaly_score_<machine>_section_<xx>_test.csv`` (``file name,score``, no
header) and ``decision_result_<machine>_section_<xx>_test.csv`` (``file
name,0|1``, 1 = anomaly).
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly.datasets.mimii import ClipSet
from soundanomaly.evaluation import partial_auc, roc_auc
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import PathLike

__all__ = ["DCASEScore", "SectionScore", "dcase_score", "mcclish_pauc", "write_submission"]

_EPS = sys.float_info.epsilon


def mcclish_pauc(labels: npt.ArrayLike, scores: npt.ArrayLike, *, max_fpr: float = 0.1) -> float:
    """Partial AUC up to ``max_fpr`` with McClish's standardisation: what the DCASE evaluators report.

    Equal to scikit-learn's ``roc_auc_score(labels, scores, max_fpr=max_fpr)``:
    ``0.5 * (1 + (A - p²/2) / (p - p²/2))`` for the raw area ``A`` under the ROC
    curve up to ``p = max_fpr``; 1.0 is perfect, 0.5 random.

    Examples
    --------
    >>> mcclish_pauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), mcclish_pauc([0, 0, 1, 1], [0.2, 0.2, 0.2, 0.2])
    (1.0, 0.5)

    """
    raw = partial_auc(labels, scores, max_fpr=max_fpr) * max_fpr
    if np.isnan(raw):
        return float("nan")
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    if max_area == min_area:  # max_fpr = 1: the plain AUC
        return float(raw)
    return float(0.5 * (1 + (raw - min_area) / (max_area - min_area)))


@dataclass(frozen=True)
class SectionScore:
    """DCASE metrics of one machine type and section.

    Attributes
    ----------
    machine : str
    section : int
        Section (2021+) or machine id (2020).
    auc : dict of str to float
        AUC per domain (``"source"``, ``"target"``; ``"all"`` for 2020). NaN when a class is missing.
    pauc : dict of str to float
        pAUC: one entry ``"all"`` (2022+, 2020) or one per domain (2021).
    n_clips, n_anomalies : int

    Examples
    --------
    See :func:`dcase_score`.

    >>> SectionScore("fan", 0, {"source": 0.9}, {"all": 0.7}, 4, 2).values()
    [0.9, 0.7]

    """

    machine: str
    section: int
    auc: dict[str, float]
    pauc: dict[str, float]
    n_clips: int
    n_anomalies: int

    def values(self) -> list[float]:
        """The AUCs, then the pAUCs: what enters the harmonic mean."""
        return [*self.auc.values(), *self.pauc.values()]


@dataclass(frozen=True)
class DCASEScore:
    """The DCASE official score and the per-section table it comes from.

    Attributes
    ----------
    official : float
        Harmonic mean of all AUCs and pAUCs (what DCASE ranks by).
    arithmetic_mean : float
        Arithmetic mean of the same values (the organisers report it too).
    sections : tuple of SectionScore
    max_fpr : float
    pauc_kind : {"mcclish", "normalized"}
    edition : int

    Examples
    --------
    See :func:`dcase_score`.

    >>> s = DCASEScore(0.8, 0.85, (SectionScore("fan", 0, {"source": 0.9}, {"all": 0.7}, 4, 2),), 0.1, "mcclish", 2023)
    >>> print(s.to_markdown().splitlines()[2])
    | fan | 00 | 0.900 | n/a | 0.700 |

    """

    official: float
    arithmetic_mean: float
    sections: tuple[SectionScore, ...]
    max_fpr: float
    pauc_kind: str
    edition: int

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict (NaN as None)."""

        def clean(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            "official_score": clean(self.official),
            "arithmetic_mean": clean(self.arithmetic_mean),
            "aggregate": "harmonic mean of AUC per (machine, section, domain) and pAUC per (machine, section)",
            "max_fpr": self.max_fpr,
            "pauc": self.pauc_kind,
            "edition": self.edition,
            "sections": [
                {
                    "machine": s.machine,
                    "section": s.section,
                    "auc": {k: clean(v) for k, v in s.auc.items()},
                    "pauc": {k: clean(v) for k, v in s.pauc.items()},
                    "n_clips": s.n_clips,
                    "n_anomalies": s.n_anomalies,
                }
                for s in self.sections
            ],
        }

    def to_markdown(self) -> str:
        """One row per machine type and section: AUC source/target, pAUC; the official score below."""
        from soundanomaly._printable import printable  # machine names come from folder names

        if self.edition == 2021:
            head = "| machine | section | AUC source | AUC target | pAUC source | pAUC target |"
            rule = "|---|---|---:|---:|---:|---:|"
            rows = [
                f"| {printable(s.machine, markdown=True)} | {s.section:02d} | {_fmt(s.auc.get('source'))} | {_fmt(s.auc.get('target'))} "
                f"| {_fmt(s.pauc.get('source'))} | {_fmt(s.pauc.get('target'))} |"
                for s in self.sections
            ]
        else:
            head = "| machine | section | AUC source | AUC target | pAUC |"
            rule = "|---|---|---:|---:|---:|"
            rows = [
                f"| {printable(s.machine, markdown=True)} | {s.section:02d} | {_fmt(s.auc.get('source', s.auc.get('all')))} "
                f"| {_fmt(s.auc.get('target'))} | {_fmt(s.pauc.get('all'))} |"
                for s in self.sections
            ]
        return "\n".join(
            [
                head,
                rule,
                *rows,
                "",
                f"DCASE official score (harmonic mean of the AUCs and pAUCs above): {_fmt(self.official)}; "
                f"arithmetic mean {_fmt(self.arithmetic_mean)}; pAUC over FPR <= {self.max_fpr:g} ({self.pauc_kind}).",
            ]
        )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def dcase_score(
    clips: ClipSet,
    scores: npt.ArrayLike,
    *,
    labels: npt.ArrayLike | None = None,
    domains: Sequence[str] | None = None,
    max_fpr: float = 0.1,
    pauc: Literal["mcclish", "normalized"] = "mcclish",
    edition: int = 2023,
) -> DCASEScore:
    """The DCASE Task 2 official score of anomaly scores on test clips.

    Parameters
    ----------
    clips : ClipSet
        Test clips (their machine type, section and domain; usually
        ``DCASE(root).filter(split="test")``).
    scores : array-like [shape=(n_clips,)]
        Anomaly scores, higher = more anomalous.
    labels : array-like of {0, 1} [shape=(n_clips,)], optional
        1 = anomaly. Default: the clips' labels. Pass the ground truth for an
        unlabelled evaluation set.
    domains : sequence of {"source", "target"}, optional
        Default: the clips' domains (needed for ``edition >= 2021``; pass the
        ground truth for 2022+ evaluation sets, whose names hide it).
    max_fpr : float in (0, 1], default 0.1
        DCASE's p.
    pauc : {"mcclish", "normalized"}, default "mcclish"
        ``"mcclish"`` as the organisers' evaluator (scikit-learn); ``"normalized"`` as the task description.
    edition : int, default 2023
        2022 and later: AUC per (section, domain) with all anomalies of the
        section, pAUC per section. 2021: AUC and pAUC per (section, domain) on
        that domain's clips. 2020: AUC and pAUC per machine id, no domains.

    Returns
    -------
    DCASEScore

    Raises
    ------
    ParameterError
        Mismatched lengths, labels not 0/1, non-finite scores, missing domains.

    Examples
    --------
    >>> from soundanomaly.datasets import ClipRecord, ClipSet
    >>> recs = [ClipRecord(f"{d}{lab}{i}.wav", "fan", 0, None, lab, domain=d, split="test", layout="dcase")
    ...         for d in ("source", "target") for lab in ("normal", "abnormal") for i in range(3)]
    >>> s = dcase_score(ClipSet(recs), [0, 1, 2, 5, 6, 7, 1, 2, 3, 8, 9, 10])
    >>> s.official, s.sections[0].auc
    (1.0, {'source': 1.0, 'target': 1.0})
    """
    if pauc not in ("mcclish", "normalized"):
        raise ParameterError(f"pauc must be 'mcclish' or 'normalized', got {pauc!r}")
    if not 0.0 < max_fpr <= 1.0:
        raise ParameterError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    if edition not in (2020, 2021, 2022, 2023, 2024, 2025):
        raise ParameterError(f"edition must be a DCASE Task 2 year 2020-2025, got {edition!r}")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(clips.labels if labels is None else labels)
    if s.shape != (len(clips),) or y.shape != (len(clips),) or len(clips) == 0:
        raise ParameterError(
            f"need one score and one label per clip: {len(clips)} clips, {s.shape} scores, {y.shape} labels"
        )
    if not np.isin(y, (0, 1)).all():
        raise ParameterError("labels must be 0 (normal) or 1 (anomaly)")
    y = y.astype(np.int8)
    if not np.isfinite(s).all():
        raise ParameterError("scores contain NaN or infinite values")
    dom = np.array([r.domain or "" for r in clips] if domains is None else list(domains), dtype=object)
    if dom.shape != (len(clips),):
        raise ParameterError(f"got {len(dom)} domains for {len(clips)} clips")
    if edition >= 2021 and not np.isin(dom, ("source", "target")).all():
        raise ParameterError(
            f"edition {edition} scores per domain, but some clips have none; pass domains= (the ground truth)"
        )
    area = mcclish_pauc if pauc == "mcclish" else partial_auc
    keys = np.array([f"{r.machine}\0{r.section}" for r in clips], dtype=object)
    sections: list[SectionScore] = []
    for key in sorted(set(keys.tolist()), key=lambda k: (k.split("\0")[0], int(k.split("\0")[1]))):
        machine, section = key.split("\0")
        in_section = keys == key
        ys, ss, ds = y[in_section], s[in_section], dom[in_section]
        auc: dict[str, float] = {}
        pa: dict[str, float] = {}
        if edition == 2020:
            auc["all"] = roc_auc(ys, ss)
            pa["all"] = area(ys, ss, max_fpr=max_fpr)
        elif edition == 2021:
            for d in ("source", "target"):
                mask = ds == d
                if mask.any():
                    auc[d] = roc_auc(ys[mask], ss[mask])
                    pa[d] = area(ys[mask], ss[mask], max_fpr=max_fpr)
        else:
            for d in ("source", "target"):
                if ((ds == d) & (ys == 0)).any():
                    mask = (ds == d) | (ys == 1)
                    auc[d] = roc_auc(ys[mask], ss[mask])
            pa["all"] = area(ys, ss, max_fpr=max_fpr)
        sections.append(SectionScore(machine, int(section), auc, pa, int(in_section.sum()), int(ys.sum())))
    values = np.array([v for sec in sections for v in sec.values()], dtype=np.float64)
    if np.isnan(values).any() or not len(values):
        official = mean = float("nan")
    else:
        floored = np.maximum(values, _EPS)
        official = float(len(floored) / np.sum(1.0 / floored))
        mean = float(np.mean(values))
    return DCASEScore(official, mean, tuple(sections), max_fpr, pauc, edition)


def write_submission(
    folder: PathLike,
    clips: ClipSet,
    scores: npt.ArrayLike,
    *,
    threshold: float | None = None,
    decisions: npt.ArrayLike | None = None,
    edition: int = 2023,
) -> list[Path]:
    """Write scores in the DCASE submission format, one pair of CSV files per machine type and section.

    ``anomaly_score_<machine>_section_<xx>_test.csv`` holds ``<file name>,<score>``
    rows and ``decision_result_<machine>_section_<xx>_test.csv`` holds
    ``<file name>,<0|1>`` rows (1 = anomaly), without header, as the organisers'
    evaluator reads them. Works for unlabelled evaluation sets. Each file is
    written atomically; an existing audio file is never overwritten.

    Parameters
    ----------
    folder : path
        Created if missing.
    clips : ClipSet
        The scored clips (usually the test clips).
    scores : array-like [shape=(n_clips,)]
        Higher = more anomalous.
    threshold : float, optional
        Decision: ``score > threshold`` is an anomaly (e.g. ``detector.threshold_``).
    decisions : array-like of {0, 1}, optional
        The decisions themselves, instead of ``threshold``. With neither, only the
        anomaly-score files are written.
    edition : int, default 2023
        2022 and later: ``..._section_<xx>_test.csv``. 2021: one file per domain,
        ``..._section_<xx>_source_test.csv`` / ``_target_test.csv``. 2020:
        ``anomaly_score_<machine>_id_<xx>.csv``.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> from soundanomaly.datasets import ClipRecord, ClipSet
    >>> clips = ClipSet([ClipRecord(f"eval/fan/test/section_00_000{i}.wav", "fan", 0, None, "unknown",
    ...                             split="test", layout="dcase") for i in range(2)])
    >>> [p.name for p in write_submission("team", clips, [0.2, 0.9], threshold=0.5)]
    ['anomaly_score_fan_section_00_test.csv', 'decision_result_fan_section_00_test.csv']
    >>> print(Path("team/decision_result_fan_section_00_test.csv").read_text().strip())
    section_00_0000.wav,0
    section_00_0001.wav,1
    """
    from soundanomaly._safefiles import atomic_file

    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(clips),):
        raise ParameterError(f"got {s.shape} scores for {len(clips)} clips")
    if not np.isfinite(s).all():
        raise ParameterError("scores contain NaN or infinite values")
    if threshold is not None and decisions is not None:
        raise ParameterError("pass threshold or decisions, not both")
    flags: npt.NDArray[np.int8] | None = None
    if decisions is not None:
        d = np.asarray(decisions)
        if d.shape != s.shape or not np.isin(d, (0, 1)).all():
            raise ParameterError("decisions must be 0/1, one per clip")
        flags = d.astype(np.int8)
    elif threshold is not None:
        flags = (s > threshold).astype(np.int8)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if edition == 2021 and any(r.domain not in ("source", "target") for r in clips):
        raise ParameterError("edition 2021 writes one file per domain, but some clips have no domain")
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(clips):
        if edition == 2020:
            suffix = f"{record.machine}_id_{record.section:02d}"
        elif edition == 2021:
            suffix = f"{record.machine}_section_{record.section:02d}_{record.domain}_test"
        else:
            suffix = f"{record.machine}_section_{record.section:02d}_test"
        groups.setdefault(suffix, []).append(index)
    written: list[Path] = []
    for suffix, indices in sorted(groups.items()):
        inputs = [clips[i].path for i in indices]
        kinds: list[tuple[str, Any]] = [("anomaly_score", s)]
        if flags is not None:
            kinds.append(("decision_result", flags))
        for kind, values in kinds:
            path = out / f"{kind}_{suffix}.csv"
            with atomic_file(path, newline="", inputs=inputs) as handle:
                writer = csv.writer(handle, lineterminator="\n")
                for i in indices:
                    cell = f"{values[i]:.9g}" if kind == "anomaly_score" else str(int(values[i]))
                    writer.writerow([os.path.basename(clips[i].path), cell])
            written.append(path)
    return written
