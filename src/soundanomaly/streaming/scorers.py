"""Streaming scorers: a detector's per-vector scores that follow a dB-reference shift in closed form.

A detector provides its scorer through a ``stream_scorer()`` method
(:meth:`GaussianDetector.stream_scorer
<soundanomaly.detectors.GaussianDetector.stream_scorer>`,
:meth:`AutoencoderDetector.stream_scorer
<soundanomaly.detectors.AutoencoderDetector.stream_scorer>`); the monitor's
front end asks for it and never looks inside the detector. A detector without
one is scored exactly, vector by vector.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.typing import FloatArray

__all__ = [
    "FLOAT32_RTOL",
    "AutoencoderStreamScorer",
    "GaussianStreamScorer",
    "StreamScorer",
    "clip_score",
    "stream_scorer_of",
]


def clip_score(detector: Any, per_vector: npt.NDArray[np.float64]) -> float:
    """Reduce per-vector scores to the clip score as ``detector.score`` does (its own ``aggregate``).

    The default mean is computed here without the general machinery (it is
    the same sum and division); any other aggregate goes through the
    detector's own reduction, never a guessed one.
    """
    if getattr(detector, "aggregate", "mean") == "mean":
        return float(np.add.reduce(per_vector) / len(per_vector))
    return float(detector.reduce_windows(per_vector, np.array([0, len(per_vector)], dtype=np.int64))[0])


FLOAT32_RTOL = 1e-6  # the largest relative error of a vector's score allowed for a float32 shortcut


def stream_scorer_of(detector: Any) -> StreamScorer | None:
    """The detector's streaming scorer (its ``stream_scorer()`` method), or None where it has none.

    Examples
    --------
    >>> stream_scorer_of(object()) is None
    True
    """
    provide = getattr(detector, "stream_scorer", None)
    scorer = provide() if callable(provide) else None
    return scorer if isinstance(scorer, StreamScorer) else None


class StreamScorer:
    """A detector's per-vector score from cached terms that follow a uniform shift ``x - delta`` in closed form.

    A detector that can score a stream incrementally returns one from its
    ``stream_scorer()`` method. The scores of fresh terms equal the
    detector's own per-vector scores, with the same arithmetic or to float64
    rounding. Subclasses implement :meth:`terms`, :meth:`shift` and
    :meth:`scores`.
    """

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:  # pragma: no cover - abstract
        """Per-vector terms of ``vectors`` (n, D)."""
        raise NotImplementedError

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        """The terms of ``vectors - delta``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        """Per-vector scores from the terms."""
        raise NotImplementedError  # pragma: no cover - abstract


class GaussianStreamScorer(StreamScorer):
    """``q = (x - mu)' P (x - mu)`` and ``p = 1' P (x - mu)``; shifting by ``d``: ``q - 2 d p + d^2 c``, ``p - d c``.

    With the Cholesky factor ``P = L L'``, ``q = |L' (x - mu)|^2`` and
    ``p = (L' 1)' L' (x - mu)``: a triangular product, half the arithmetic of
    ``(x - mu) P``. The product runs in float32 (twice as fast) when, on probe
    vectors drawn from the model at a few shifts, ``q`` stays within
    :data:`FLOAT32_RTOL` of the float64 value (a well-conditioned covariance,
    as the default shrinkage gives); else in float64 (~1e-13).
    """

    def __init__(self, mean: npt.ArrayLike, precision: npt.ArrayLike) -> None:
        self.mean: npt.NDArray[np.float64] = np.asarray(mean, dtype=np.float64)  # the detector's own arrays, no copy
        self.precision: npt.NDArray[np.float64] = np.asarray(precision, dtype=np.float64)
        self.total = float(self.precision.sum())  # c = 1' P 1
        self.factor: npt.NDArray[np.floating[Any]] | None = None
        try:
            lower = np.linalg.cholesky(self.precision)
        except np.linalg.LinAlgError:  # not numerically positive definite: the full product
            return
        if np.isfinite(lower).all():
            from scipy.linalg.blas import dtrmm, strmm

            self.ones = lower.sum(axis=0)  # L' 1
            self.factor, self.factor_mean, self.trmm = np.asfortranarray(lower), self.mean, dtrmm  # BLAS reads in place
            probes = self._probes(lower)
            reference = self._project(probes)
            self.factor, self.factor_mean, self.trmm = (
                np.asfortranarray(lower, dtype=np.float32), self.mean.astype(np.float32), strmm
            )  # fmt: skip
            if self._relative_error(self._project(probes), reference) > FLOAT32_RTOL:
                self.factor, self.factor_mean, self.trmm = np.asfortranarray(lower), self.mean, dtrmm

    def _probes(self, lower: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """Float32 vectors drawn from the model, typical to far out (0.5 to 10 standard deviations)."""
        from scipy.linalg import solve_triangular

        white = np.random.default_rng(0).standard_normal((len(self.mean), 64)) * np.repeat([0.5, 1.0, 3.0, 10.0], 16)
        centred = solve_triangular(lower, white, trans="T", lower=True).T  # rows drawn from N(0, cov), scaled
        probes: FloatArray = (self.mean + centred).astype(np.float32)  # as the stream's frames are
        return probes

    def _relative_error(self, terms: list[npt.NDArray[Any]], reference: list[npt.NDArray[Any]]) -> float:
        """Largest relative error of ``q`` against the reference terms', also shifted by up to 6 dB."""
        worst = 0.0
        for delta in (0.0, -6.0, 0.5, 6.0):
            got, want = self.shift(terms, delta)[0], self.shift(reference, delta)[0]
            if not (np.isfinite(got).all() and (want > 0).all()):
                return np.inf
            worst = max(worst, float(np.max(np.abs(got - want) / want)))
        return worst

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        return self._project(vectors)

    def _project(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        """:meth:`terms` (also of the probes, which the stream's own accounting does not count)."""
        if self.factor is not None:
            # float32 frames minus the mean, in the factor's precision; centred.T is Fortran-ordered,
            # L' centred' in place, i.e. rows centred @ L
            centred = np.subtract(vectors, self.factor_mean)
            y = self.trmm(1.0, self.factor, centred.T, side=0, lower=1, trans_a=1, overwrite_b=1).T
            return [np.einsum("ij,ij->i", y, y, dtype=np.float64), y @ self.ones]
        centred = np.subtract(vectors, self.mean)  # float64, as GaussianDetector's astype then subtract
        projected = centred @ self.precision
        return [np.einsum("ij,ij->i", projected, centred), projected.sum(axis=1)]

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        quadratic, linear = terms
        return [quadratic - 2.0 * delta * linear + delta * delta * self.total, linear - delta * self.total]

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        # GaussianDetector._score_windows: einsum("ij,ij->i", centred @ precision, centred) / width, to float64 rounding
        return np.asarray(terms[0] / len(self.mean), dtype=np.float64)


class AutoencoderStreamScorer(StreamScorer):
    """Cached per vector: the first layer's pre-activation ``z``, the last hidden layer's output ``h``,
    the residual ``r = reconstruction - x``'s projection ``g = W r`` on the output layer ``W`` and its sum
    ``s``, and the score ``|r|^2 / D``.

    Shifting ``x`` by ``-d``: ``z - d (1' W0)`` exactly (the first layer is linear), and the hidden
    layers run again from it. The residual moves by ``dr = W' dh + d 1`` (``dh`` the change of ``h``),
    so the output layer, the widest product (``64 x 320``), need not run again: ``|r|^2`` gains
    ``dr' (r_old + r_new) = [dh, d]' [g_old + g_new, s_old + s_new]``, and
    ``[g, s]`` gains ``[dh, d] [[G, W 1], [1' W', D]]`` with ``G = W W'`` (``65 x 65``). All of these
    are residual-sized, so float32 keeps the clip scorer's precision (the score accumulates in float64).
    New vectors run the network as :meth:`AutoencoderDetector.reconstruct` does, with the same
    arithmetic, plus one product for ``[g, s]``.
    """

    def __init__(self, weights: list[npt.NDArray[Any]]) -> None:
        weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.first, self.hidden = weights[0], weights[1:-2]  # hidden: bias 0, W1, bias 1, ..., the last hidden bias
        self.output, self.output_bias = weights[-2], weights[-1]
        self.column_sums = weights[0].sum(axis=0, dtype=np.float64)  # 1' W0
        out = self.output.astype(np.float64)  # (h, D)
        self.width = out.shape[1]
        row_sums = out.sum(axis=1)  # W 1
        self.project = np.ascontiguousarray(np.hstack([out.T, np.ones((self.width, 1))]), dtype=np.float32)
        self.gram = np.block([[out @ out.T, row_sums[:, None]], [row_sums[None, :], np.array([[self.width]])]])
        self.gram = self.gram.astype(np.float32)
        self._rows = 0
        self._tiles: list[FloatArray] = []
        self._zeros: FloatArray = np.zeros(0, dtype=np.float32)

    def _scratch(self, n: int) -> None:
        """Row-tiled biases and zeros for ``n`` rows (NumPy adds and compares whole arrays faster than rows)."""
        if n > self._rows:
            self._rows = max(n, 2 * self._rows, 64)
            biases = [*self.hidden[0::2], self.output_bias]
            self._tiles = [np.tile(b, (self._rows, 1)) for b in biases]
            self._zeros = np.zeros(self._rows * max(len(b) for b in biases), dtype=np.float32)

    def _last_hidden(self, z: FloatArray) -> FloatArray:
        """The last hidden layer's output from first-layer pre-activations ``z``, as ``reconstruct`` computes it."""
        n = len(z)
        self._scratch(n)
        x = np.add(z, self._tiles[0][:n])
        for i in range(len(self.hidden) // 2 + 1):
            if i:
                x = x @ self.hidden[2 * i - 1]
                x += self._tiles[i][:n]
            np.maximum(x, self._zeros[: x.size].reshape(x.shape), out=x)
        return x

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        z = vectors @ self.first
        h = self._last_hidden(z)
        residual = h @ self.output
        residual += self._tiles[-1][: len(h)]
        residual -= vectors  # reconstruction_error's diff, with the same arithmetic
        score = np.asarray(np.einsum("ij,ij->i", residual, residual) / self.width, dtype=np.float64)
        return [z, h, residual @ self.project, score]

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        z, h, projected, score = terms
        moved = np.subtract(z, delta * self.column_sums, dtype=np.float32, casting="same_kind")
        new_h = self._last_hidden(moved)
        change = np.empty(projected.shape, dtype=np.float32)  # [dh, d]
        np.subtract(new_h, h, out=change[:, :-1])
        change[:, -1] = delta
        new_projected = change @ self.gram
        new_projected += projected
        projected = projected + new_projected
        gain = np.einsum("ij,ij->i", change, projected)
        return [moved, new_h, new_projected, score + gain / self.width]

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        return np.asarray(terms[-1], dtype=np.float64)
