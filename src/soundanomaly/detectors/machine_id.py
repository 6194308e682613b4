"""Self-supervised machine-id classification: the DCASE 2020 approach to anomalous sound detection.

A classifier learns to tell the machine ids apart from their normal sound
alone (the ids are free labels). A faulty machine no longer sounds like its
own id, so the classifier's belief in the clip's true id drops: the score is
``-log p(true id)``. The classifier has to learn what makes each machine
itself, which ignores much of the background noise a reconstruction model
spends its capacity on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval, Options, Satisfies, int_tuple
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets.keys import group_keys
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.options import RunOptions
from soundanomaly.exceptions import MissingDependencyError, ParameterError
from soundanomaly.features.base import ClipFeatures, take_clips
from soundanomaly.typing import ClipData, FloatArray

__all__ = ["MachineIdDetector"]


def _log_softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


class MachineIdDetector(BaseDetector):
    """Classify feature windows by machine id; score = ``-log p(true id)``.

    A small dense network (Keras 3 to train, NumPy to score) maps each
    standardised feature window (default: 5 log-mel frames) to the machine
    ids seen in fit. A clip's score is the mean over its windows (or
    ``aggregate``) of ``-log p(its own id)``: higher = more anomalous.

    The ids come from the data: a ClipSet (``"<machine>/id_NN"``), MIMII or
    DCASE paths, or ``groups=`` in :meth:`fit` and :meth:`score`. Fit needs at
    least two ids. Scoring a clip whose id is unknown (no ClipSet, paths or
    ``groups``) falls back to ``-log max_k p(k)`` with a warning.

    Parameters
    ----------
    hidden : tuple of int, default (256, 128)
        Units of the hidden ReLU layers.
    epochs : int, default 20
    batch_size : int, default 256
    learning_rate : float, default 1e-3
    label_smoothing : float in [0, 1), default 0.1
        Keeps the softmax from saturating on easy ids (saturated probabilities
        do not rank anomalies).
    seed : int or None, default 0
        Seeds Keras for reproducible training.
    verbose : int, default 0
        Keras progress output.
    features, channel, threshold, holdout, aggregate, random_state
        See :class:`~soundanomaly.detectors.base.BaseDetector`. The hold-out
        for the threshold is taken here (seeded by ``random_state``), so its
        clips are scored against their own ids.

    Attributes
    ----------
    classes_ : list of str
        The machine ids, in output order.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(i % 2, 1, size=(30, 8)).astype("float32") for i in range(20)]
    >>> ids = ["fan/id_00", "fan/id_02"] * 10
    >>> detector = MachineIdDetector(epochs=5, threshold=1.0).fit(ClipFeatures.from_arrays(clips), groups=ids)
    >>> detector.classes_
    ['fan/id_00', 'fan/id_02']
    >>> odd = ClipFeatures.from_arrays([rng.normal(1, 1, size=(30, 8)).astype("float32")])  # sounds like id_02
    >>> bool(detector.score(odd, groups=["fan/id_00"])[0] > detector.score(odd, groups=["fan/id_02"])[0])
    True
    """

    _uses_base_holdout: ClassVar[bool] = False

    _parameter_constraints: ClassVar[Constraints] = {
        "hidden": [Satisfies(int_tuple, "a non-empty tuple of positive ints")],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "label_smoothing": [Interval(float, 0, 1, closed="left")],
        "seed": [Interval(int, None, None), None],
        "verbose": [Options(0, 1, 2)],
    }

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256, 128),
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        label_smoothing: float = 0.1,
        seed: int | None = 0,
        verbose: int = 0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.verbose = verbose

    def _window_classes(self, features: ClipFeatures, groups: npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        lookup = {c: i for i, c in enumerate(self.classes_)}
        unknown = sorted(set(groups.tolist()) - set(lookup))
        if unknown:
            raise ParameterError(f"machine id(s) {unknown} were not seen in fit; known: {self.classes_}")
        per_clip = np.array([lookup[str(g)] for g in groups], dtype=np.int64)
        return np.repeat(per_clip, np.diff(features.offsets))

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        groups = getattr(self, "_fit_groups", None)
        if groups is None or len(groups) != len(features):
            try:
                groups = group_keys(features)
            except ParameterError as exc:
                raise ParameterError(f"MachineIdDetector needs each clip's machine id: {exc}") from exc
        self.classes_ = sorted(set(np.asarray(groups).tolist()))
        if len(self.classes_) < 2:
            raise ParameterError(
                f"MachineIdDetector needs clips of at least 2 machine ids to learn from, got {self.classes_}"
            )
        groups = np.asarray(groups, dtype=str)
        # Own seeded hold-out of whole clips (per id) for the threshold, scored against their ids.
        calibrating = self.threshold is None or isinstance(self.threshold, ThresholdCalibrator)
        rng = np.random.default_rng(self.random_state)
        held = np.zeros(len(features), dtype=bool)
        if calibrating and self.holdout > 0:
            for cls in self.classes_:
                members = np.flatnonzero(groups == cls)
                count = round(self.holdout * len(members))
                if count >= 1 and len(members) - count >= 2:
                    held[rng.choice(members, count, replace=False)] = True
        train_idx = np.flatnonzero(~held)
        train = features if not held.any() else _take(features, train_idx)
        x = train.windows.astype(np.float64)
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.maximum(x.std(axis=0), 1e-6)
        self.weights_ = self._train(
            ((x - self.mean_) / self.scale_).astype(np.float32), self._window_classes(train, groups[train_idx])
        )
        self._train_groups = groups
        if held.any():
            hold = _take(features, np.flatnonzero(held))
            self.holdout_scores_ = self._scores_for(hold, groups[held])
        else:
            self.holdout_scores_ = np.empty(0, dtype=np.float64)
        self.holdout_labels_ = None

    def _train(self, x: FloatArray, y: npt.NDArray[np.int64]) -> list[FloatArray]:
        try:
            import keras
        except ImportError as exc:  # pragma: no cover - the tf extra is installed in tests
            raise MissingDependencyError("keras", "tf", "training the MachineIdDetector") from exc
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        inputs = keras.Input(shape=(x.shape[1],))
        h = inputs
        for units in self.hidden:
            h = keras.layers.Dense(units, activation="relu")(h)
        outputs = keras.layers.Dense(len(self.classes_))(h)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.label_smoothing),
        )
        onehot = np.eye(len(self.classes_), dtype=np.float32)[y]
        model.fit(x, onehot, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=self.verbose)
        return [np.asarray(w, dtype=np.float32) for w in model.get_weights()]

    # -- scoring ------------------------------------------------------------------
    def log_proba(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        """``log p(id | window)`` for each window, shape ``(n_windows, n_ids)`` (columns: :attr:`classes_`)."""
        self._check_fitted()
        return self._log_proba(windows)

    def _log_proba(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        h = (windows.astype(np.float64) - self.mean_) / self.scale_
        layers = list(zip(self.weights_[0::2], self.weights_[1::2], strict=True))
        for i, (w, b) in enumerate(layers):
            h = h @ w.astype(np.float64) + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0.0)
        return _log_softmax(h)

    def _scores_for(self, features: ClipFeatures, groups: npt.NDArray[np.str_]) -> npt.NDArray[np.float64]:
        log_p = self._log_proba(features.windows)
        columns = self._window_classes(features, groups)
        per_window = -log_p[np.arange(len(columns)), columns]
        return self._reduce(per_window, features.offsets)

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        """Fallback without ids: ``-log max_k p(k)`` (how unlike every known machine)."""
        return np.asarray(-self._log_proba(windows).max(axis=1), dtype=np.float64)

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        groups = getattr(self, "_train_groups", None)
        if groups is not None and len(groups) == len(features):
            return self._scores_for(features, groups)
        return self._score_features(features)

    def score(
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """``-log p(true id)`` of each clip (higher = more anomalous).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        groups : sequence of str, optional
            Each clip's machine id; default from a ClipSet or MIMII/DCASE paths.
        """
        self._check_fitted()
        with self._using(options):
            return self._score_with_ids(data, groups)

    def _score_with_ids(self, data: ClipData, groups: Sequence[str] | None) -> npt.NDArray[np.float64]:
        self._check_data(data)
        try:
            keys = group_keys(data, groups)
        except ParameterError:
            if groups is not None:
                raise
            warnings.warn(
                "MachineIdDetector: the clips' machine ids are unknown (pass groups= or a ClipSet); "
                "scoring -log max p instead of -log p(true id)",
                UserWarning,
                stacklevel=2,
            )
            return super().score(data)
        if isinstance(data, ClipFeatures):
            features = data
        else:
            features = self.features.extract(self._paths(data), channel=self.channel, progress=bool(self.progress))
        features = self._checked(features)
        scores = self._scores_for(features, keys)
        self.last_status_ = ("ok",) * len(scores)
        self.last_source_rates_ = tuple(features.source_rates) or (None,) * len(scores)
        return scores

    # -- persistence --------------------------------------------------------------
    def _get_state(self) -> dict[str, FloatArray]:
        state = {"mean": self.mean_, "scale": self.scale_}
        state.update({f"w{i}": w for i, w in enumerate(self.weights_)})
        return state

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.mean_ = state["mean"].astype(np.float64)
        self.scale_ = state["scale"].astype(np.float64)
        self.weights_ = [state[f"w{i}"].astype(np.float32) for i in range(len(state) - 2)]

    def _manifest_extra(self) -> dict[str, Any]:
        return {"classes": list(self.classes_)}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        self.classes_ = [str(c) for c in extra["classes"]]


def _take(features: ClipFeatures, indices: npt.NDArray[np.int64]) -> ClipFeatures:
    return take_clips(features, indices)
