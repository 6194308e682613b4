"""The incremental log-mel front end: a sample buffer and mel frames computed once per stream."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import MAX_ABS_SAMPLE, check_samples
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.logmel import LogMelFrames, hann_window, mel_db, power_spectrum
from soundanomaly.streaming.scorers import StreamScorer, clip_score, stream_scorer_of
from soundanomaly.typing import FloatArray

__all__ = ["TOP_DB", "FramePipeline", "SampleBuffer", "as_mono"]

TOP_DB = 80.0
_FLOAT32 = np.dtype(np.float32)
_MAX_ENERGY = MAX_ABS_SAMPLE**2


def as_mono(block: npt.ArrayLike, channel: int) -> FloatArray:
    if type(block) is np.ndarray and block.dtype is _FLOAT32 and block.ndim == 1:  # the common case, fast
        # the energy (a BLAS dot) is NaN or inf when any sample is, and exceeds MAX_ABS_SAMPLE**2 when one is that large
        energy = block.dot(block)
        if not (math.isfinite(energy) and energy <= _MAX_ENERGY):
            check_samples("<stream>", block)  # the exact rule: NaN, inf, or samples so large that windows become NaN
        return block
    array = np.asarray(block)
    if array.ndim == 2:
        if not -array.shape[1] <= channel < array.shape[1]:
            raise ParameterError(f"channel {channel} out of range: the block has {array.shape[1]} channel(s)")
        array = array[:, channel]
    elif array.ndim != 1:
        raise ParameterError(f"block must be 1-D (n,) or 2-D (n, n_channels), got shape {array.shape}")
    kind = array.dtype.kind
    if kind == "i" and array.dtype.itemsize == 2:
        scaled: FloatArray = np.multiply(array, 1.0 / 32768.0, dtype=np.float32)
        return scaled
    if kind not in "fiu":
        raise ParameterError(f"block must hold numbers, got dtype {array.dtype}")
    samples = np.asarray(array, dtype=np.float32)
    if kind == "f":
        check_samples("<stream>", samples)
    return samples


class SampleBuffer:
    """Append-only view of a stream's recent samples, ``[start, end)`` in absolute sample indices."""

    def __init__(self) -> None:
        self._data = np.zeros(1 << 16, dtype=np.float32)
        self.start = 0  # absolute index of _data[0]
        self._used = 0

    @property
    def end(self) -> int:
        return self.start + self._used

    def append(self, samples: FloatArray) -> None:
        used = self._used
        end = used + len(samples)
        if end > len(self._data):
            grown = np.empty(max(2 * len(self._data), 2 * end), dtype=np.float32)
            grown[:used] = self._data[:used]
            self._data = grown
        self._data[used:end] = samples
        self._used = end

    def discard_before(self, absolute: int) -> None:
        drop = min(max(0, absolute - self.start), self._used)
        if (drop and drop >= len(self._data) // 2) or (
            drop and self._used + (1 << 14) > len(self._data)
        ):  # compact rarely: amortised O(1) per sample
            self._data[: self._used - drop] = self._data[drop : self._used]
            self._used -= drop
            self.start += drop

    def view(self, lo: int, hi: int) -> FloatArray:
        if lo < self.start or hi > self.end:
            raise ParameterError(f"samples [{lo}, {hi}) are no longer buffered")  # pragma: no cover - internal
        return self._data[lo - self.start : hi - self.start]


class FramePipeline:
    """Incremental log-mel frames and cached vector scores for one window length.

    Frame ``j`` of the stream covers samples ``[j * hop - pad, j * hop - pad + n_fft)``
    (``pad = n_fft // 2``). A window starting at sample ``s`` (a multiple of
    ``hop``) uses frames ``s / hop + i``: the interior ones lie wholly inside
    the window and are the stream's frames, computed once; the first and last
    few reach into the window's zero padding and are computed per window,
    exactly as :class:`LogMelFrames` does for a clip.

    A feature vector made of interior frames keeps its values from window to
    window except for the dB reference (the window's loudest bin), which
    shifts all its values by the same amount. The scores of the interior
    vectors are cached by stream position, all at one reference (the last
    window's); while it holds, a window scores only its new vectors and its
    edge vectors, in one call. When it moves, the cached vectors follow in
    closed form where the detector provides a streaming scorer (``stream_scorer()``; the Gaussian: a quadratic in the
    shift; the autoencoder: its first layer and its residual, see
    :class:`~soundanomaly.streaming.scorers.AutoencoderStreamScorer`), else they are re-scored once. Vectors touched
    by the ``top_db`` floor at either reference are re-scored exactly.
    """

    def __init__(self, features: LogMelFrames, sr: int, window: int, detector: Any) -> None:
        self.features = features
        self.sr = sr
        self.hop = features.hop_length
        self.n_fft = features.n_fft
        self.pad = self.n_fft // 2
        self.n_mels = features.n_mels
        self.n_stack = features.frames
        self.width = self.n_mels * self.n_stack
        self.window = window
        self.n_frames = 1 + window // self.hop
        self.first = -(-self.pad // self.hop)  # first interior frame of a window
        self.last = min((window + self.pad - self.n_fft) // self.hop, self.n_frames - 1)
        self.n_vectors = self.n_frames - self.n_stack + 1
        self.inner = (self.first, self.last - self.n_stack + 1)  # window-relative indices of interior vectors
        self.n_inner = max(0, self.inner[1] - self.inner[0] + 1)
        self.edge_rows = np.array([*range(self.first), *range(self.last + 1, self.n_frames)], dtype=np.intp)
        self.edge_vectors = np.array(
            [i for i in range(self.n_vectors) if not self.inner[0] <= i <= self.inner[1]], dtype=np.intp
        )
        # the frames of the edge vectors, as runs of copies: (vector, its frames k0:k1, from the window's
        # zero-padded edge frames (True) or the cache, first row there (edge row, or cache row after row a))
        edge_index = {frame: row for row, frame in enumerate(self.edge_rows.tolist())}
        self.edge_copies: list[tuple[int, int, int, bool, int]] = []
        for v, i in enumerate(self.edge_vectors.tolist()):
            for k in range(self.n_stack):
                padded = i + k in edge_index
                row = edge_index[i + k] if padded else i + k - self.first
                last = self.edge_copies[-1] if self.edge_copies else None
                if last and last[0] == v and last[3] == padded and last[2] == k and last[4] + k - last[1] == row:
                    self.edge_copies[-1] = (v, last[1], k + 1, padded, last[4])
                else:
                    self.edge_copies.append((v, k, k + 1, padded, row))
        self.windowed = np.empty((0, self.n_fft), dtype=np.float32)
        self.taper = hann_window(self.n_fft)
        self.floor = np.full((self.n_vectors, self.width), -TOP_DB, dtype=np.float32)
        self.detector = detector
        self.shift_model: StreamScorer | None = stream_scorer_of(detector)
        # interior frame cache: rows are stream frames cache_start .. cache_start + cache_used - 1
        self.cache = np.empty((max(64, 2 * self.n_frames), self.n_mels), dtype=np.float32)
        self.cache_start = self.first
        self.cache_used = 0
        # interior vector cache: rows are stream positions vec_start .. vec_start + vec_used - 1, all at vec_ref
        self.vec_start = 0
        self.vec_used = 0
        self.vec_ref = np.float32(0.0)
        self.vec_score = np.zeros(max(64, 2 * self.n_vectors), dtype=np.float64)
        self.vec_terms: list[npt.NDArray[Any]] = []
        self.work = np.empty((self.n_vectors, self.width), dtype=np.float32)  # the vectors scored exactly
        self.scores = np.empty(self.n_vectors, dtype=np.float64)
        self.edge_spans = []  # per edge frame: its slice and the window samples that fill it (the rest is padding)
        for i in self.edge_rows.tolist():
            lo = i * self.hop - self.pad
            self.edge_spans.append(
                (max(0, -lo), max(0, min(self.n_fft, self.window - lo)), max(0, lo), max(0, lo + self.n_fft))
            )

    def oldest_needed_sample(self) -> int:
        """Samples before this are never read again (the next stream frame starts here)."""
        return (self.cache_start + self.cache_used) * self.hop - self.pad

    def _log_mel(self, windowed: FloatArray) -> FloatArray:
        """Un-referenced dB of windowed frames ``(n, n_fft)``: the clip path's steps (``features.logmel``)."""
        return mel_db(power_spectrum(windowed), sr=self.sr, n_mels=self.n_mels)

    def _extend_cache(self, upto: int, buffer: SampleBuffer, start: int) -> FloatArray:
        """Compute stream frames up to ``upto`` (inclusive) and the window's edge frames in one FFT; return the edges."""
        nxt = self.cache_start + self.cache_used
        count = max(0, upto - nxt + 1)
        if self.cache_used + count > len(self.cache):
            grown = np.empty((max(2 * len(self.cache), self.cache_used + count), self.n_mels), dtype=np.float32)
            grown[: self.cache_used] = self.cache[: self.cache_used]
            self.cache = grown
        n_edges = len(self.edge_rows)
        if count + n_edges > len(self.windowed):  # a workspace, reused from window to window
            self.windowed = np.empty((count + n_edges, self.n_fft), dtype=np.float32)
        windowed = self.windowed[: count + n_edges]
        if count:
            samples = buffer.view(nxt * self.hop - self.pad, upto * self.hop - self.pad + self.n_fft)
            step = samples.strides[0]
            frames = np.ndarray(
                (count, self.n_fft), np.float32, buffer=samples, strides=(self.hop * step, step)
            )  # overlapping views, no copy
            np.multiply(frames, self.taper, out=windowed[:count])
        if n_edges:
            edges = windowed[count:]
            edges[:] = 0.0
            samples = buffer.view(start, start + self.window)
            for row, (lo, hi, src_lo, src_hi) in enumerate(self.edge_spans):
                edges[row, lo:hi] = samples[src_lo:src_hi]
            edges *= self.taper
        db = self._log_mel(windowed)
        if count:
            self.cache[self.cache_used : self.cache_used + count] = db[:count]
            self.cache_used += count
        return db[count:]

    def _make_room_for_vectors(self, position: int) -> int:
        """Drop cached vectors before stream position ``position``; return its row, with room for a window after it."""
        behind = position - self.vec_start
        if behind >= self.vec_used:  # nothing cached is still needed (or the hop skips past it)
            self.vec_start, self.vec_used, behind = position, 0, 0
        if behind + self.n_inner > len(self.vec_score):  # compact (amortised: the array holds two windows)
            keep = self.vec_used - behind
            for array in (self.vec_score, *self.vec_terms):
                array[:keep] = array[behind : self.vec_used]
            self.vec_start, self.vec_used, behind = position, keep, 0
        return behind

    def score_window(self, buffer: SampleBuffer, start: int) -> float:
        base = start // self.hop  # stream frame index of window frame 0
        lo, hi = base + self.first, base + self.last  # interior frames, as stream frames
        stale = lo - self.cache_start  # cached frames no window needs any more (windows only move forward)
        if stale > 0 and (stale >= len(self.cache) // 2 or stale >= self.cache_used):
            keep = max(0, self.cache_used - stale)
            self.cache[:keep] = self.cache[stale : self.cache_used]
            self.cache_start, self.cache_used = lo, keep
        edge_db = self._extend_cache(hi, buffer, start)
        a = lo - self.cache_start  # cache row of the window's first interior frame
        cache = self.cache
        ref = cache[a : hi - self.cache_start + 1].max() if hi >= lo else np.float32(-np.inf)  # the loudest bin
        if len(edge_db):
            ref = max(ref, edge_db.max())
        ref = np.float32(ref)
        n_inner, n_edge = self.n_inner, len(self.edge_vectors)
        model = self.shift_model
        row = self._make_room_for_vectors(base + self.inner[0]) if n_inner else 0
        n_cached = self.vec_used - row if n_inner else 0
        # the window's interior vectors, overlapping views of the frame cache (vector j = frames a + j ...)
        step = cache.strides[1]
        inner = np.ndarray(
            (n_inner, self.width), np.float32, buffer=cache, offset=a * cache.strides[0],
            strides=(self.n_mels * step, step),
        )  # fmt: skip
        redo: npt.NDArray[np.intp] | None = None  # cached vectors to re-score exactly
        if n_cached and ref != self.vec_ref:
            if model is None:
                redo = np.arange(n_cached)
            else:
                frames = cache[a : a + n_cached + self.n_stack - 1]
                floor, lowest = np.float32(-TOP_DB), frames.min()
                if lowest - ref >= floor and lowest - self.vec_ref >= floor:  # the usual case: nothing near the floor
                    moved, redo = np.arange(n_cached), np.empty(0, dtype=np.intp)
                else:
                    frame_min = frames.min(axis=1)
                    vec_min = frame_min[:n_cached].copy()
                    for k in range(1, self.n_stack):
                        np.minimum(vec_min, frame_min[k : k + n_cached], out=vec_min)
                    movable = (vec_min - ref >= floor) & (vec_min - self.vec_ref >= floor)
                    moved = np.flatnonzero(movable)
                    redo = np.flatnonzero(~movable)
                if len(moved):  # closed form in the shift; vectors unclipped at either reference
                    delta = float(ref) - float(self.vec_ref)
                    every = len(moved) == n_cached  # the usual case: slices, not gathers
                    rows: Any = slice(row, row + n_cached) if every else moved + row
                    terms = model.shift([t[rows] for t in self.vec_terms], delta)
                    self.vec_score[rows] = model.scores(terms)
                    for cached, new_terms in zip(self.vec_terms, terms, strict=True):
                        cached[rows] = new_terms
        # score exactly, in one call: the edge vectors, the cached ones to redo, the window's new ones
        n_redo = 0 if redo is None else len(redo)
        n_new = max(0, n_inner - n_cached)
        total = n_edge + n_redo + n_new
        work = self.work[:total]
        if n_edge:
            stacked = work[:n_edge].reshape(n_edge, self.n_stack, self.n_mels)
            for v, k0, k1, padded, first in self.edge_copies:
                source = edge_db[first:] if padded else cache[a + first :]
                stacked[v, k0:k1] = source[: k1 - k0]
        if n_redo:
            assert redo is not None
            work[n_edge : n_edge + n_redo] = inner[redo]
        if n_new:
            work[n_edge + n_redo :] = inner[n_cached:]
        np.subtract(work, ref, out=work)  # referenced and floored as the clip scorer does
        np.maximum(work, self.floor[:total], out=work)
        if model is not None and total:
            terms = model.terms(work)
            exact = model.scores(terms)
        else:
            terms, exact = [], self.detector.score_windows(work) if total else np.empty(0)
        if n_redo or n_new:  # cache the interior ones at this reference
            if terms and not self.vec_terms:
                self.vec_terms = [np.zeros((len(self.vec_score), *t.shape[1:]), dtype=t.dtype) for t in terms]
            targets: list[tuple[Any, slice]] = []
            if n_redo:
                assert redo is not None
                targets.append((redo + row, slice(n_edge, n_edge + n_redo)))
            if n_new:
                targets.append((slice(row + n_cached, row + n_inner), slice(n_edge + n_redo, total)))
            for rows, part in targets:
                self.vec_score[rows] = exact[part]
                for cached, new_terms in zip(self.vec_terms, terms, strict=True):
                    cached[rows] = new_terms[part]
        if n_inner:
            self.vec_used = row + n_inner
            self.vec_ref = ref
        scores = self.scores
        scores[self.inner[0] : self.inner[0] + n_inner] = self.vec_score[row : row + n_inner]
        if n_edge:
            scores[self.edge_vectors] = exact[:n_edge]
        return clip_score(self.detector, scores)
