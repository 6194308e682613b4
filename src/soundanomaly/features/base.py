"""Feature-extractor base class and the ragged per-clip feature container."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly._progress import progress as _progress
from soundanomaly.audio import Channel, _decode_samples, read_bytes
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["BaseFeatureExtractor", "ClipFeatures"]


@dataclass(frozen=True)
class ClipFeatures:
    """Feature vectors of many clips in one contiguous matrix (ragged, CSR-style).

    Clip ``i`` owns rows ``windows[offsets[i]:offsets[i + 1]]``. Keeping all
    windows in one array lets detectors run one batched model call across clips
    and reduce to per-clip scores with :meth:`mean_per_clip`.

    Attributes
    ----------
    windows : np.ndarray [shape=(n_windows_total, n_features)], float32
    offsets : np.ndarray [shape=(n_clips + 1,)], int64
    paths : tuple of str
        Source of each clip (empty strings for arrays).
    params : dict
        Parameters of the extractor that made these features.

    Examples
    --------
    >>> import numpy as np
    >>> features = ClipFeatures.from_arrays([np.zeros((2, 3), np.float32), np.ones((4, 3), np.float32)])
    >>> len(features), features.n_features, features.offsets.tolist()
    (2, 3, [0, 2, 6])
    >>> features.mean_per_clip(np.arange(6)).tolist()
    [0.5, 3.5]

    """

    windows: FloatArray
    offsets: npt.NDArray[np.int64]
    paths: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.windows.ndim != 2:
            raise ParameterError(f"windows must be 2-D (n_windows, n_features), got shape {self.windows.shape}")
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.windows):
            raise ParameterError("offsets must start at 0 and end at len(windows)")
        if np.any(np.diff(self.offsets) < 1):
            raise ParameterError("every clip must have at least one feature window")
        if self.paths and len(self.paths) != len(self):
            raise ParameterError(f"got {len(self.paths)} paths for {len(self)} clips")

    @classmethod
    def from_arrays(
        cls, arrays: Sequence[FloatArray], *, paths: Sequence[str] = (), params: dict[str, Any] | None = None
    ) -> ClipFeatures:
        """Stack per-clip matrices of shape ``(n_windows_i, n_features)``."""
        if len(arrays) == 0:
            raise ParameterError("no clips: got an empty sequence of feature arrays")
        widths = {a.shape[1] if a.ndim == 2 else -1 for a in arrays}
        if len(widths) != 1 or -1 in widths:
            raise ParameterError(f"every array must be 2-D with the same width, got widths {sorted(widths)}")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        windows = np.concatenate(arrays).astype(np.float32, copy=False)
        return cls(windows, offsets, tuple(paths), dict(params or {}))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_features(self) -> int:
        """Width of one feature vector."""
        return int(self.windows.shape[1])

    def clip(self, index: int) -> FloatArray:
        """The ``(n_windows, n_features)`` matrix of clip ``index``."""
        return self.windows[self.offsets[index] : self.offsets[index + 1]]

    def __iter__(self) -> Iterator[FloatArray]:
        return (self.clip(i) for i in range(len(self)))

    def mean_per_clip(self, per_window: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Average a per-window quantity (shape ``(n_windows_total,)``) within each clip."""
        sums = np.add.reduceat(np.asarray(per_window, dtype=np.float64), self.offsets[:-1])
        return np.asarray(sums / np.diff(self.offsets), dtype=np.float64)


class BaseFeatureExtractor:
    """Base for extractors: subclasses implement :meth:`transform` and :meth:`params`.

    The base adds file loading with clear errors, batch extraction with a
    progress bar, parallel workers and an on-disk cache keyed by file content
    and parameters.

    Examples
    --------
    A custom extractor only writes ``transform`` and ``params``:

    >>> import numpy as np
    >>> class FrameEnergy(BaseFeatureExtractor):
    ...     def transform(self, signal, sr):
    ...         frames = signal[: len(signal) // 400 * 400].reshape(-1, 400)
    ...         return (frames**2).mean(axis=1, keepdims=True).astype(np.float32)
    ...     def params(self):
    ...         return {"name": "FrameEnergy"}
    >>> FrameEnergy().transform(np.ones(1600, np.float32), 16000).shape
    (4, 1)

    """

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "name")
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseFeatureExtractor) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash(json.dumps(self.params(), sort_keys=True))

    def transform_file(self, path: PathLike, *, channel: Channel = 0) -> FloatArray:
        """Load one clip and return its features; errors name the file."""
        name = os.fspath(path)
        return self._transform_bytes(read_bytes(name), name, channel)

    def _transform_bytes(self, data: bytes, name: str, channel: Channel) -> FloatArray:
        samples, gain, sr = _decode_samples(data, name=name, channel=channel)
        shape = self._output_shape(len(samples)) if samples.ndim == 1 else None
        with _naming(name):
            if shape is None:
                return self.transform(_as_signal(samples, gain), sr)
            out = np.empty(shape, dtype=np.float32)
            self._transform_into(samples, gain, sr, out)
            return out

    def extract(
        self,
        paths: Sequence[PathLike],
        *,
        channel: Channel = 0,
        n_jobs: int = 1,
        cache_dir: PathLike | None = None,
        progress: bool = True,
    ) -> ClipFeatures:
        """Extract features of many clips.

        Parameters
        ----------
        paths : sequence of str or os.PathLike
            Local files or fsspec URLs.
        channel : int, ``"mean"`` or None, default 0
            Microphone to use (see :func:`soundanomaly.audio.load`).
        n_jobs : int >= 1, default 1
            Worker processes. ``-1`` uses every core.
        cache_dir : path or None
            Store each clip's features in ``cache_dir``, keyed by a hash of the
            file's bytes and the extractor parameters, so re-runs are instant.
        progress : bool, default True
            Show a progress bar on stderr.

        Returns
        -------
        ClipFeatures
        """
        names = [os.fspath(p) for p in paths]
        if not names:
            raise ParameterError("paths is empty: nothing to extract")
        if n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        if not isinstance(n_jobs, int) or n_jobs < 1:
            raise ParameterError(f"n_jobs must be a positive int or -1, got {n_jobs!r}")
        cache = Path(cache_dir) if cache_dir is not None else None
        serial = n_jobs == 1 or len(names) < 2 * n_jobs
        if serial and cache is None:
            return self._extract_serial(names, channel, progress)
        job = _Job(self, channel, cache)
        if serial:
            arrays = list(_progress(map(job, names), total=len(names), desc="features", enabled=progress))
        else:
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                chunk = max(1, len(names) // (8 * n_jobs))
                results = pool.map(job, names, chunksize=chunk)
                arrays = list(_progress(results, total=len(names), desc="features", enabled=progress))
        return ClipFeatures.from_arrays(arrays, paths=names, params=self.params())

    def _output_shape(self, n_samples: int) -> tuple[int, int] | None:
        """``(n_windows, n_features)`` a clip of ``n_samples`` yields, if known before computing it."""
        return None

    def _transform_into(self, samples: npt.NDArray[Any], gain: float, sr: int, out: FloatArray) -> None:
        """Write the features of the signal ``samples * gain`` into ``out``; subclasses may avoid the temporaries.

        ``samples`` is float32, or the int16 view of a PCM-16 file (see
        :func:`soundanomaly.audio._decode_samples`).
        """
        out[...] = self.transform(_as_signal(samples, gain), sr)

    def _extract_serial(self, names: list[str], channel: Channel, progress: bool) -> ClipFeatures:
        """One process, no cache: windows go straight into one growing matrix (no per-clip copies).

        Extractors that cannot tell their output shape up front (``_output_shape``
        returns None) fall back to one array per clip and a final concatenation.
        """
        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        buffer: FloatArray | None = None
        arrays: list[FloatArray] = []  # clips after the first one of unknown shape
        for i, name in enumerate(_progress(names, total=len(names), desc="features", enabled=progress)):
            samples, gain, sr = _decode_samples(read_bytes(name), name=name, channel=channel)
            shape = self._output_shape(len(samples)) if samples.ndim == 1 and not arrays else None
            start = int(offsets[i])
            with _naming(name):
                if shape is None:
                    arrays.append(self.transform(_as_signal(samples, gain), sr))
                    offsets[i + 1] = start + len(arrays[-1])
                    continue
                n, width = shape
                if buffer is None or start + n > len(buffer):
                    grown = np.empty((max(start + n, (start + n) * len(names) // (i + 1) + n), width), np.float32)
                    if buffer is not None:
                        grown[:start] = buffer[:start]
                    buffer = grown
                self._transform_into(samples, gain, sr, buffer[start : start + n])
            offsets[i + 1] = start + n
        head = [] if buffer is None else [buffer[: offsets[len(names) - len(arrays)]]]
        windows = np.concatenate(head + arrays) if arrays else head[0]
        return ClipFeatures(windows, offsets, tuple(names), self.params())

    def cache_key(self, data: bytes, channel: Channel) -> str:
        """Hex key of a clip's bytes plus the parameters that shape its features."""
        digest = hashlib.blake2b(data, digest_size=20)
        digest.update(json.dumps({"params": self.params(), "channel": channel}, sort_keys=True).encode())
        return digest.hexdigest()


def _as_signal(samples: npt.NDArray[Any], gain: float) -> FloatArray:
    """The float32 signal ``samples * gain`` (no copy when it already is one)."""
    if gain == 1.0 and samples.dtype == np.float32:
        return samples
    signal: FloatArray = np.multiply(samples, gain, dtype=np.float32)
    return signal


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """Re-raise an :class:`AudioError` about a signal as one that names the file."""
    try:
        yield
    except AudioError as exc:
        raise AudioError(name, exc.problem) from exc


class _Job:
    """Picklable per-file work item for :meth:`BaseFeatureExtractor.extract`."""

    def __init__(self, extractor: BaseFeatureExtractor, channel: Channel, cache: Path | None) -> None:
        self.extractor = extractor
        self.channel = channel
        self.cache = cache

    def __call__(self, name: str) -> FloatArray:
        if self.cache is None:
            return self.extractor.transform_file(name, channel=self.channel)
        data = read_bytes(name)
        key = self.extractor.cache_key(data, self.channel)
        target = self.cache / key[:2] / f"{key}.npy"
        if target.exists():
            try:
                return np.load(target)  # type: ignore[no-any-return]
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed below
        features = self.extractor._transform_bytes(data, name, self.channel)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, features)
        os.replace(tmp, target)
        return features
