"""The output folder of a scoring job: Parquet partitions, the job identity and the completed-shard manifest.

Layout of ``out/``::

    .soundanomaly.json     marker: {"kind": "scores"} (the library made this folder)
    _job.json              model fingerprint, sources, shard size: a resume must match it
    _shards.jsonl          one line per completed shard: {"shard": i, "clips": n, "digest": ...}
    part-00000000.parquet  one partition per shard (path, group, score, label, status, reason)

A partition is written to a hidden temporary file, flushed and renamed into
place, then its manifest line is appended: a shard is complete when its line
is there. A partition without a line (a kill between the rename and the
append) is written again, under the same name: never twice. Readers
(pandas, DuckDB, Spark, ``pyarrow.dataset``) skip names starting with ``_``
or ``.``, so ``pandas.read_parquet("out/")`` sees the scores only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soundanomaly._safeio import MARKER
from soundanomaly.exceptions import OutputExistsError, ParameterError, SoundAnomalyError

__all__ = ["COLUMNS", "JobFolder"]

#: Columns of every partition, in order.
COLUMNS = ("path", "group", "score", "label", "status", "reason")
_FORMAT_VERSION = 1
_JOB = "_job.json"
_SHARDS = "_shards.jsonl"


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.fspath(path))).resolve()


def check_out_folder(out: str | os.PathLike[str], inputs: Sequence[str]) -> Path:
    """Refuse an output folder that is, holds or lies inside an input (a source folder, a clip, the model).

    The library's rules for every output folder (:func:`soundanomaly._safeio.check_output_folder`:
    never an input or a folder holding one, never the working directory, no
    file in the way) apply first; whether an existing folder may be written is
    decided by :meth:`JobFolder.open` (a scoring job's own folder may be resumed).
    """
    from soundanomaly._safeio import check_output_folder

    if "://" in os.fspath(out):
        raise ParameterError(f"{out}: the output must be a local folder (the driver writes the Parquet files)")
    local = [item for item in inputs if "://" not in item]
    check_output_folder(out, inputs=local, overwrite=True)
    folder = _resolved(out)
    for item in local:
        if _resolved(item) in folder.parents:
            raise OutputExistsError(f"{out}: refusing to write there: the output lies inside the input {item}")
    return folder


class JobFolder:
    """The output folder of one scoring job (see the module docstring for its layout)."""

    def __init__(self, folder: Path, identity: dict[str, Any]) -> None:
        self.folder = folder
        self.identity = identity
        self.done: dict[int, str] = {}

    @classmethod
    def open(cls, out: str | os.PathLike[str], identity: dict[str, Any], inputs: Sequence[str]) -> JobFolder:
        """Create ``out`` for a new job, or reopen it to resume the same job (same model, sources, shard size).

        Raises
        ------
        OutputExistsError
            ``out`` is or holds an input, lies inside one, exists and was not
            made by soundanomaly, or holds another job's scores.
        """
        import pyarrow  # noqa: F401  (fail before any work when the extra is missing)

        folder = check_out_folder(out, inputs)
        identity = {"format_version": _FORMAT_VERSION, **identity}
        job = cls(folder, identity)
        if folder.exists() and not folder.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a folder; choose another output path")
        if folder.is_dir() and any(folder.iterdir()):
            job._reopen(out)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            job._write_small(_JOB, json.dumps(identity, indent=1, sort_keys=True))
            job._write_small(MARKER, json.dumps({"kind": "scores", "format_version": _FORMAT_VERSION}))
        return job

    def _reopen(self, out: str | os.PathLike[str]) -> None:
        try:
            marker = json.loads((self.folder / MARKER).read_text())
            saved = json.loads((self.folder / _JOB).read_text())
        except (OSError, ValueError):
            raise OutputExistsError(
                f"{out}: exists and was not written by a soundanomaly scoring job; choose another (or an empty) folder"
            ) from None
        if not isinstance(marker, dict) or marker.get("kind") != "scores" or not isinstance(saved, dict):
            raise OutputExistsError(f"{out}: exists and holds no soundanomaly scores; choose another folder")
        if saved != self.identity:
            changed = sorted(k for k in set(saved) | set(self.identity) if saved.get(k) != self.identity.get(k))
            raise OutputExistsError(
                f"{out}: holds the scores of another job (different {', '.join(changed)}); "
                "choose another folder to start a new job, or rerun the same model and sources to resume"
            )
        self.done = self._read_manifest(out)

    def _read_manifest(self, out: str | os.PathLike[str]) -> dict[int, str]:
        done: dict[int, str] = {}
        path = self.folder / _SHARDS
        if not path.exists():
            return done
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    entry = json.loads(line)
                    shard, digest = entry["shard"], entry["digest"]
                except (ValueError, KeyError, TypeError):
                    if line.endswith("\n"):
                        raise OutputExistsError(f"{out}: {_SHARDS} line {number} is damaged") from None
                    continue  # a last line cut short by a kill: that shard is redone
                if not isinstance(shard, int) or not isinstance(digest, str) or shard < 0:
                    raise OutputExistsError(f"{out}: {_SHARDS} line {number} is damaged")
                if self.partition(shard).is_file():
                    done[shard] = digest
        return done

    def partition(self, shard: int) -> Path:
        """Path of shard ``shard``'s Parquet file."""
        return self.folder / f"part-{shard:08d}.parquet"

    def is_done(self, shard: int, digest: str) -> bool:
        """Whether ``shard`` is complete; a shard whose clip names changed since it was written is an error."""
        saved = self.done.get(shard)
        if saved is None:
            return False
        if saved != digest:
            raise SoundAnomalyError(
                f"{self.folder}: shard {shard} was scored from other clips than the source lists now; the source "
                "changed since the job started: start a new job in another folder"
            )
        return True

    def write(self, shard: int, digest: str, columns: dict[str, list[Any]]) -> None:
        """Write one partition atomically, then record it as complete."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "path": pa.array(columns["path"], pa.string()),
                "group": pa.array(columns["group"], pa.string()),
                "score": pa.array(columns["score"], pa.float64()),
                "label": pa.array(columns["label"], pa.int8()),
                "status": pa.array(columns["status"], pa.string()),
                "reason": pa.array(columns["reason"], pa.string()),
            }
        )
        target = self.partition(shard)
        tmp = self.folder / f".{target.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        line = json.dumps({"shard": shard, "clips": len(columns["path"]), "digest": digest}) + "\n"
        with open(self.folder / _SHARDS, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.done[shard] = digest

    def _write_small(self, name: str, text: str) -> None:
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.folder / name)
