"""Feature-extractor base class and the ragged per-clip feature container."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly._clipfiles import ALLOW_HTTP
from soundanomaly._progress import ProgressBar
from soundanomaly._validation import Constraints, Interval
from soundanomaly.audio import Channel, allow_http, decode_samples, read_bytes
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.typing import FloatArray, PathLike

_LOG = logging.getLogger("soundanomaly.features")

#: What :meth:`BaseFeatureExtractor.extract` does with a clip it cannot read.
OnError = Literal["raise", "skip"]

__all__ = [
    "SPECTRAL_LIMITS",
    "BaseFeatureExtractor",
    "ClipFeatures",
    "as_signal",
    "check_rate_matches",
    "check_sample_rate",
    "take_clips",
]


#: Bounds of the spectral parameters the extractors share: what a constructor (and so a saved model's
#: feature parameters) may set. Outside them a clip's features would take absurd memory or time.
SPECTRAL_LIMITS: Constraints = {
    "n_fft": [Interval(int, 16, 65536)],
    "hop_length": [Interval(int, 16, 65536)],
    "n_mels": [Interval(int, 1, 1024)],
    "frames": [Interval(int, 1, 64)],
}


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
    skipped : tuple of (str, str)
        ``(path, reason)`` of each clip that :meth:`BaseFeatureExtractor.extract`
        left out because it could not be read (``on_error="skip"``); empty otherwise.
        ``paths`` lists only the clips that are present.
    source_rates : tuple of int
        Sample rate (Hz) each present clip was recorded at, before any
        resampling; empty for features made from arrays.

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
    skipped: tuple[tuple[str, str], ...] = ()
    source_rates: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.windows.ndim != 2:
            raise ParameterError(f"windows must be 2-D (n_windows, n_features), got shape {self.windows.shape}")
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.windows):
            raise ParameterError("offsets must start at 0 and end at len(windows)")
        if np.any(np.diff(self.offsets) < 1):
            raise ParameterError("every clip must have at least one feature window")
        if self.paths and len(self.paths) != len(self):
            raise ParameterError(f"got {len(self.paths)} paths for {len(self)} clips")
        if self.source_rates and len(self.source_rates) != len(self):
            raise ParameterError(f"got {len(self.source_rates)} source rates for {len(self)} clips")

    @classmethod
    def from_arrays(
        cls,
        arrays: Sequence[FloatArray],
        *,
        paths: Sequence[str] = (),
        params: dict[str, Any] | None = None,
        skipped: Sequence[tuple[str, str]] = (),
        source_rates: Sequence[int] = (),
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
        return cls(
            windows,
            offsets,
            tuple(paths),
            dict(params or {}),
            tuple((str(p), str(r)) for p, r in skipped),
            tuple(int(r) for r in source_rates),
        )

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

    @property
    def target_sr(self) -> int | None:
        """Rate (Hz) every clip is brought to before :meth:`transform`: the ``sr`` attribute, if any.

        Extractors with an ``sr`` attribute (:class:`LogMelFrames`,
        :class:`SpectrogramImages`) never compute features at another rate:
        a file recorded at a higher rate is resampled to ``sr`` with soxr
        (high quality); a file recorded at a lower rate is refused with an
        :class:`AudioError` (its upper band is missing: its features would not
        be comparable). Extractors without one get each file at its own rate.
        """
        rate = getattr(self, "sr", None)
        return int(rate) if rate is not None else None

    def transform_file(self, path: PathLike, *, channel: Channel = 0) -> FloatArray:
        """Load one clip and return its features; errors name the file."""
        name = os.fspath(path)
        return self._transform_bytes(read_bytes(name), name, channel)[0]

    def _transform_bytes(self, data: bytes, name: str, channel: Channel) -> tuple[FloatArray, int]:
        """Features of one encoded clip, and the rate the file was recorded at."""
        with _naming(name):
            samples, gain, sr, source_sr = decode_samples(
                data, name=name, channel=channel, sr=self.target_sr, upsample=False
            )
            shape = self._output_shape(len(samples)) if samples.ndim == 1 else None
            if shape is None:
                return _checked_features(self.transform(as_signal(samples, gain), sr)), source_sr
            out = np.empty(shape, dtype=np.float32)
            self._transform_into(samples, gain, sr, out)
            return _checked_features(out), source_sr

    def extract(
        self,
        paths: Sequence[PathLike] | PathLike,
        *,
        channel: Channel = 0,
        n_jobs: int = 1,
        cache_dir: PathLike | None = None,
        progress: bool | ProgressBar = False,
        on_error: OnError = "raise",
    ) -> ClipFeatures:
        """Extract features of many clips.

        Parameters
        ----------
        paths : sequence of str or os.PathLike, one path, or a ClipSet
            Local files or ``s3://`` URLs (``http(s)://`` only inside
            :func:`soundanomaly.audio.allow_http`). A single path counts as a
            list of one.
        channel : int, ``"mean"`` or None, default 0
            Microphone to use (see :func:`soundanomaly.audio.load`).
        n_jobs : int >= 1, default 1
            Worker processes. ``-1`` uses every core.
        cache_dir : path or None
            Store each clip's features in ``cache_dir``, keyed by a hash of the
            file's bytes and the extractor parameters, so re-runs are instant.
        progress : bool or ProgressBar, default False
            Show one progress bar on stderr for the whole call (the same
            default as the detectors' ``progress``); or advance the
            given :class:`~soundanomaly._progress.ProgressBar` (one bar across
            several calls; it is not closed here).
        on_error : {"raise", "skip"}, default "raise"
            What to do with a clip that cannot be used (:class:`AudioError`:
            missing, unreadable, truncated, too short, NaN/inf samples...).
            ``"raise"`` stops at the first one; ``"skip"`` leaves it out, logs a
            warning and lists it in :attr:`ClipFeatures.skipped`. If every clip
            fails, an :class:`AudioError` is raised either way.

        Returns
        -------
        ClipFeatures
            The clips that could be read, in input order.

        Examples
        --------
        >>> import numpy as np, soundfile as sf
        >>> sf.write("ok.wav", np.zeros(16000, np.float32), 16000)
        >>> from pathlib import Path
        >>> _ = Path("bad.wav").write_bytes(b"not audio")
        >>> from soundanomaly.features import LogMelFrames
        >>> features = LogMelFrames().extract(["ok.wav", "bad.wav"], on_error="skip", progress=False)
        >>> features.paths, [path for path, _ in features.skipped]
        (('ok.wav',), ['bad.wav'])
        """
        items: Any = paths
        if isinstance(items, (str, bytes, os.PathLike)):
            items = [os.fsdecode(items)]
        elif isinstance(getattr(items, "paths", None), list):  # a ClipSet
            items = items.paths
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        try:
            names = [os.fspath(p) for p in items]
        except TypeError as exc:
            raise ParameterError(f"paths must be a sequence of str or os.PathLike ({exc})") from exc
        if not names:
            raise ParameterError("paths is empty: nothing to extract")
        if n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
            raise ParameterError(f"n_jobs must be a positive int or -1, got {n_jobs!r}")
        cache = Path(cache_dir) if cache_dir is not None else None
        serial = n_jobs == 1 or len(names) < 2 * n_jobs
        bar = progress if isinstance(progress, ProgressBar) else None
        owned = bar is None
        if bar is None:
            bar = ProgressBar(total=len(names), desc="features", enabled=bool(progress))
        try:
            if serial and cache is None:
                return self._extract_serial(names, channel, bar, on_error)
            job = _Job(self, channel, cache)
            results: list[tuple[FloatArray | None, str, int]] = []
            if serial:
                for name in names:
                    results.append(job(name))
                    bar.update()
            else:
                with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                    chunk = max(1, len(names) // (8 * n_jobs))
                    for result in pool.map(job, names, chunksize=chunk):
                        results.append(result)
                        bar.update()
        finally:
            if owned:
                bar.close()
        arrays: list[FloatArray] = []
        kept: list[str] = []
        rates: list[int] = []
        skipped: list[tuple[str, str]] = []
        for name, (array, problem, rate) in zip(names, results, strict=True):
            if array is None:
                _failed(name, problem, on_error, skipped)
            else:
                arrays.append(array)
                kept.append(name)
                rates.append(rate)
        _check_some_left(names, skipped)
        return ClipFeatures.from_arrays(
            arrays, paths=kept, params=self.params(), skipped=skipped, source_rates=rates if all(rates) else ()
        )

    def _output_shape(self, n_samples: int) -> tuple[int, int] | None:
        """``(n_windows, n_features)`` a clip of ``n_samples`` yields, if known before computing it."""
        return None

    def _transform_into(self, samples: npt.NDArray[Any], gain: float, sr: int, out: FloatArray) -> None:
        """Write the features of the signal ``samples * gain`` into ``out``; subclasses may avoid the temporaries.

        ``samples`` is float32, or the int16 view of a PCM-16 file (see
        :func:`soundanomaly.audio.decode_samples`).
        """
        out[...] = self.transform(as_signal(samples, gain), sr)

    def _extract_serial(self, names: list[str], channel: Channel, bar: ProgressBar, on_error: OnError) -> ClipFeatures:
        """One process, no cache: windows go straight into one growing matrix (no per-clip copies).

        Extractors that cannot tell their output shape up front (``_output_shape``
        returns None) fall back to one array per clip and a final concatenation.
        """
        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        buffer: FloatArray | None = None
        arrays: list[FloatArray] = []  # clips after the first one of unknown shape
        kept: list[str] = []
        rates: list[int] = []
        skipped: list[tuple[str, str]] = []
        for i, name in enumerate(names):
            start = int(offsets[len(kept)])
            try:
                with _naming(name):
                    data = read_bytes(name)
                    samples, gain, sr, source_sr = decode_samples(
                        data, name=name, channel=channel, sr=self.target_sr, upsample=False
                    )
                    shape = self._output_shape(len(samples)) if samples.ndim == 1 and not arrays else None
                    if shape is None:
                        arrays.append(_checked_features(self.transform(as_signal(samples, gain), sr)))
                        end = start + len(arrays[-1])
                    else:
                        n, width = shape
                        if buffer is None or start + n > len(buffer):
                            grown = np.empty(
                                (max(start + n, (start + n) * len(names) // (i + 1) + n), width), np.float32
                            )
                            if buffer is not None:
                                grown[:start] = buffer[:start]
                            buffer = grown
                        self._transform_into(samples, gain, sr, buffer[start : start + n])
                        _checked_features(buffer[start : start + n])
                        end = start + n
            except AudioError as exc:
                _failed(name, exc.problem, on_error, skipped, exc)
                continue
            finally:
                bar.update()
            kept.append(name)
            rates.append(source_sr)
            offsets[len(kept)] = end
        _check_some_left(names, skipped)
        offsets = offsets[: len(kept) + 1]
        head = [] if buffer is None else [buffer[: offsets[len(kept) - len(arrays)]]]
        windows = np.concatenate(head + arrays) if arrays else head[0]
        return ClipFeatures(windows, offsets, tuple(kept), self.params(), tuple(skipped), tuple(rates))

    def cache_key(self, data: bytes, channel: Channel) -> str:
        """Hex key of a clip's bytes plus the parameters that shape its features."""
        digest = hashlib.blake2b(data, digest_size=20)
        digest.update(json.dumps({"params": self.params(), "channel": channel}, sort_keys=True).encode())
        return digest.hexdigest()


def check_sample_rate(sr: Any) -> int:
    """Validate an extractor's ``sr`` parameter: an int in the accepted range of header rates.

    Examples
    --------
    >>> check_sample_rate(16000)
    16000
    >>> check_sample_rate(0)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: sr must be an int sample rate in [1000, 768000] Hz, got 0

    """
    from soundanomaly.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if (
        not isinstance(sr, (int, np.integer))
        or isinstance(sr, (bool, np.bool_))
        or not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE
    ):
        raise ParameterError(f"sr must be an int sample rate in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz, got {sr!r}")
    return int(sr)


def check_rate_matches(given: Any, expected: int, owner: str) -> None:
    """Refuse a signal at a rate other than the extractor's ``sr`` (features are only comparable at one rate).

    Examples
    --------
    >>> check_rate_matches(16000, 16000, "LogMelFrames")
    >>> check_rate_matches(8000, 16000, "LogMelFrames")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: sr=8000 Hz but this LogMelFrames computes features at 16000 Hz: resample the signal first (soundanomaly.audio.load(path, sr=16000)), or use transform_file()/extract(), which resample
    """
    if given != expected:
        raise ParameterError(
            f"sr={given!r} Hz but this {owner} computes features at {expected} Hz: resample the signal first "
            f"(soundanomaly.audio.load(path, sr={expected})), or use transform_file()/extract(), which resample"
        )


def _failed(
    name: str, problem: str, on_error: OnError, skipped: list[tuple[str, str]], exc: AudioError | None = None
) -> None:
    """Raise (``on_error="raise"``) or record and log a clip that could not be used."""
    if on_error == "raise":
        if exc is not None:
            raise exc
        raise AudioError(name, problem)
    _LOG.warning("skipping %s: %s", name, problem)
    skipped.append((name, problem))


def _check_some_left(names: Sequence[str], skipped: Sequence[tuple[str, str]]) -> None:
    if skipped and len(skipped) == len(names):
        path, problem = skipped[0]
        raise AudioError(path, f"none of the {len(names)} clip(s) could be used; the first failed with: {problem}")


def _checked_features(features: FloatArray) -> FloatArray:
    """Refuse a clip whose features are empty or not finite (fail closed: never a silent NaN score)."""
    if features.ndim != 2 or len(features) == 0:
        raise AudioError("<signal>", f"gave no feature vectors (shape {features.shape})")
    if not np.isfinite(features).all():
        raise AudioError("<signal>", "gave NaN or infinite features (samples of absurd magnitude?)")
    return features


def as_signal(samples: npt.NDArray[Any], gain: float) -> FloatArray:
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
    """Picklable per-file work item for :meth:`BaseFeatureExtractor.extract`.

    Returns ``(features, "", source rate)`` or ``(None, problem, 0)``: library errors travel
    back as text (an :class:`AudioError` does not survive pickling intact); the rate is 0 when unknown.
    """

    def __init__(self, extractor: BaseFeatureExtractor, channel: Channel, cache: Path | None) -> None:
        self.extractor = extractor
        self.channel = channel
        self.cache = cache
        self.allow_http = ALLOW_HTTP.get()

    def __call__(self, name: str) -> tuple[FloatArray | None, str, int]:
        with allow_http(self.allow_http):  # the caller's choice, also in a worker process
            try:
                features, rate = self._run(name)
                return features, "", rate
            except AudioError as exc:
                return None, exc.problem, 0

    def _run(self, name: str) -> tuple[FloatArray, int]:
        data = read_bytes(name)
        if self.cache is None:
            return self.extractor._transform_bytes(data, name, self.channel)
        key = self.extractor.cache_key(data, self.channel)
        target = self.cache / key[:2] / f"{key}.npy"
        if target.exists():
            try:
                cached = np.load(target, allow_pickle=False)
                if cached.ndim == 2 and cached.dtype == np.float32 and len(cached) and np.isfinite(cached).all():
                    return cached, _header_rate(data)
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed below
        features, rate = self.extractor._transform_bytes(data, name, self.channel)
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npy.tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.save(handle, features)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return features, rate


def _header_rate(data: bytes) -> int:
    """The sample rate a clip's header declares (0 when it cannot be told): for cached features."""
    import io

    import soundfile as sf

    try:
        return int(sf.info(io.BytesIO(data)).samplerate)
    except Exception:  # only informative: the features came from the cache
        return 0


def take_clips(features: ClipFeatures, indices: npt.ArrayLike) -> ClipFeatures:
    """The clips at ``indices``, in that order (paths, parameters and source rates kept).

    Examples
    --------
    >>> features = ClipFeatures.from_arrays([np.zeros((2, 3), np.float32), np.ones((4, 3), np.float32)])
    >>> take_clips(features, [1]).offsets.tolist()
    [0, 4]
    """
    idx = np.asarray(indices, dtype=np.int64)
    return ClipFeatures.from_arrays(
        [features.clip(int(i)) for i in idx],
        paths=[features.paths[i] for i in idx] if features.paths else (),
        params=features.params,
        source_rates=[features.source_rates[i] for i in idx] if features.source_rates else (),
    )
