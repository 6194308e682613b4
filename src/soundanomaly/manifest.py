"""SageMaker Ground Truth image-classification manifests (what Rekognition Custom Labels reads).

One JSON object per line::

    {"source-ref": "s3://bucket/images/abnormal/x.png",
     "sound-label": 1,
     "sound-label-metadata": {"class-name": "abnormal", "confidence": 1.0,
                              "type": "groundtruth/image-classification",
                              "job-name": "labeling-job/sound-label",
                              "human-annotated": "yes",
                              "creation-date": "2026-11-24T00:00:00.000000"}}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from soundanomaly._safefiles import atomic_file
from soundanomaly.exceptions import MissingDependencyError, ParameterError, SoundAnomalyError
from soundanomaly.typing import PathLike

__all__ = ["ManifestEntry", "read_manifest", "write_manifest"]

#: Class index of each label in the manifest (anomaly = 1).
CLASS_IDS = {"normal": 0, "abnormal": 1}


@dataclass(frozen=True)
class ManifestEntry:
    """One labelled image: where it is and its class name.

    Examples
    --------
    >>> ManifestEntry("s3://bucket/images/normal/a.png", "normal").class_name
    'normal'

    """

    source_ref: str
    class_name: str


def manifest_lines(
    entries: Sequence[ManifestEntry], *, attribute: str = "sound-label", job_name: str | None = None
) -> str:
    """The manifest as JSON Lines text."""
    if not attribute or attribute.endswith("-metadata"):
        raise ParameterError(f"attribute must be a label attribute name, got {attribute!r}")
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    lines = []
    for entry in entries:
        if entry.class_name not in CLASS_IDS:
            raise ParameterError(f"class_name must be one of {sorted(CLASS_IDS)}, got {entry.class_name!r}")
        lines.append(
            json.dumps(
                {
                    "source-ref": entry.source_ref,
                    attribute: CLASS_IDS[entry.class_name],
                    f"{attribute}-metadata": {
                        "class-name": entry.class_name,
                        "confidence": 1.0,
                        "type": "groundtruth/image-classification",
                        "job-name": job_name or f"labeling-job/{attribute}",
                        "human-annotated": "yes",
                        "creation-date": created,
                    },
                }
            )
        )
    return "\n".join(lines) + "\n"


def write_manifest(
    entries: Sequence[ManifestEntry], target: PathLike, *, attribute: str = "sound-label", job_name: str | None = None
) -> str:
    """Write a manifest to a local path or fsspec URL (``s3://``); return where it went.

    Examples
    --------
    >>> path = write_manifest([ManifestEntry("s3://b/x.png", "normal")], "train.manifest")
    >>> read_manifest(path)[0].class_name
    'normal'

    """
    text = manifest_lines(entries, attribute=attribute, job_name=job_name)
    name = os.fspath(target)
    if "://" in name:
        from soundanomaly._clipfiles import fsspec_module

        try:
            with fsspec_module(f"writing {name}").open(name, "w") as handle:
                handle.write(text)
        except ImportError as exc:
            raise MissingDependencyError("s3fs", "aws", f"writing {name}") from exc
    else:
        with atomic_file(name) as handle:
            handle.write(text)
    return name


def read_manifest(source: PathLike | str, *, text: str | None = None) -> list[ManifestEntry]:
    """Read entries from a manifest file/URL (or from ``text``), whatever its label attribute.

    Examples
    --------
    >>> text = manifest_lines([ManifestEntry("s3://b/x.png", "abnormal")])
    >>> read_manifest("train.manifest", text=text)
    [ManifestEntry(source_ref='s3://b/x.png', class_name='abnormal')]

    """
    name = os.fspath(source)
    if text is None:
        try:
            if "://" in name:
                from soundanomaly._clipfiles import fsspec_module

                with fsspec_module(f"reading {name}").open(name, "r") as handle:
                    text = str(handle.read())
            else:
                with open(name, encoding="utf-8") as handle:
                    text = handle.read()
        except MissingDependencyError:
            raise
        except ImportError as exc:
            raise MissingDependencyError("s3fs", "aws", f"reading {name}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SoundAnomalyError(f"{name}: cannot read the manifest ({exc})") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        problem = f"{name}: line {number} is not a Ground Truth classification record"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ParameterError(f"{problem} (not JSON: {exc})") from exc
        if not isinstance(record, dict):
            raise ParameterError(f"{problem} (a JSON {type(record).__name__}, not an object)")
        metadata = [v for k, v in record.items() if isinstance(k, str) and k.endswith("-metadata")]
        source_ref = record.get("source-ref")
        class_name = metadata[0].get("class-name") if metadata and isinstance(metadata[0], dict) else None
        if not isinstance(source_ref, str) or not source_ref:
            raise ParameterError(f"{problem} (no 'source-ref' string)")
        if class_name not in CLASS_IDS:
            raise ParameterError(
                f"{problem} (no '<attribute>-metadata' object with a class-name in {sorted(CLASS_IDS)})"
            )
        entries.append(ManifestEntry(source_ref, str(class_name)))
    return entries
