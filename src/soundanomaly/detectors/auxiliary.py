"""Auxiliary classification: learn to tell sections, domains and attributes apart, score embeddings by k-NN.

The top DCASE 2021-2024 Task 2 systems never see an anomaly: they train a
network to classify the free labels that normal clips carry (machine
section, domain, and the *attributes* in the file names: speed, load,
microphone...). To tell 28 V from 31 V, the network must attend to what makes
the machine itself (its tones, their spacing) rather than the background; a
faulty machine then lands away from the normal clips in its embedding space.
Each clip's embedding is scored by the per-domain k-NN memory banks of
:class:`~soundanomaly.detectors.domain_knn.MemoryBanks` (cosine distance,
z-normalised per domain, smallest over domains).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval, Satisfies, int_tuple
from soundanomaly.datasets.keys import record_of
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.clipstats import ClipStatistics
from soundanomaly.detectors.domain_knn import MemoryBanks, session_labels
from soundanomaly.exceptions import MissingDependencyError, ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.typing import FloatArray

__all__ = ["AuxiliaryClassifierDetector", "auxiliary_labels"]

#: Most classes the auxiliary task may have.
MAX_CLASSES = 4096


def auxiliary_labels(
    paths: Sequence[str], groups: npt.ArrayLike | None = None, sessions: npt.ArrayLike | None = None
) -> npt.NDArray[np.str_]:
    """The auxiliary class of each clip: its group, session and file-name attributes joined by ``"|"``.

    Attributes come from DCASE file names (``..._normal_0001_car_B1_spd_31V_mic_1.wav`` gives
    ``car_B1_spd_31V_mic_1``); a clip without them is labelled by its group (machine id or section)
    and session alone.

    Examples
    --------
    >>> auxiliary_labels(["d/ToyCar/train/section_00_source_train_normal_0001_car_B1_spd_31V_mic_1.wav"],
    ...                  ["ToyCar/section_00"], ["ToyCar/section_00/source"]).tolist()
    ['ToyCar/section_00|ToyCar/section_00/source|car_B1_spd_31V_mic_1']
    >>> auxiliary_labels(["a.wav", "b.wav"], ["fan/id_00", "fan/id_02"]).tolist()
    ['fan/id_00||', 'fan/id_02||']
    """
    n = len(paths)
    g = [""] * n if groups is None else [str(x) for x in np.asarray(groups, dtype=object).ravel()]
    s = [""] * n if sessions is None else [str(x) for x in np.asarray(sessions, dtype=object).ravel()]
    if len(g) != n or len(s) != n:
        raise ParameterError(f"got {len(g)} groups and {len(s)} sessions for {n} clips")
    attributes = []
    for path in paths:
        record = record_of(path) if path else None
        attributes.append(getattr(record, "attributes", "") or "")
    return np.asarray([f"{a}|{b}|{c}" for a, b, c in zip(g, s, attributes, strict=True)], dtype=str)


class AuxiliaryClassifierDetector(BaseDetector):
    """Embeddings of a section/domain/attribute classifier, scored by per-domain k-NN banks.

    A small dense network (Keras 3 to train, NumPy to score) maps each
    standardised clip vector (default :class:`ClipStatistics`) through
    ``hidden`` ReLU layers to an ``embedding``-unit layer, and learns to
    classify each training clip's auxiliary label (:func:`auxiliary_labels`:
    group + session + file-name attributes; the machine id when nothing else
    is known). The classification head is then dropped: each clip's
    embedding goes into the per-session memory banks of
    :class:`~soundanomaly.detectors.domain_knn.MemoryBanks` (cosine distance,
    ``n_neighbors``, z-normalised per bank), and a clip's **score** is the
    smallest normalised distance over banks: higher = more anomalous.

    When to pick it: DCASE-style data whose file names carry attributes
    (speed, load, microphone) or several machine ids/sections to tell apart,
    with a few hundred clips or more; it needs the ``tf`` extra to train
    (scoring is NumPy). With a single class to learn (one machine, no
    attributes, no sessions) it cannot train: use
    :class:`~soundanomaly.detectors.domain_knn.DomainKNNDetector`.

    Parameters
    ----------
    hidden : tuple of int, default (256,)
        Units of the hidden ReLU layers before the embedding.
    embedding : int >= 2, default 64
        Width of the embedding the k-NN banks compare.
    epochs : int >= 1, default 120
    batch_size : int >= 1, default 64
    learning_rate : float > 0, default 1e-3
    dropout : float in [0, 1), default 0.5
        Dropout before each dense layer (training only). The defaults were
        chosen on the development seed of :mod:`soundanomaly.datasets.shift`
        (per section: harmonic mean of AUC-S, AUC-T and pAUC 0.965 against
        0.828 with dropout 0.2 and 60 epochs).
    label_smoothing : float in [0, 1), default 0.1
    n_neighbors : int >= 1, default 1
        Neighbours per memory bank.
    seed : int or None, default 0
        Seeds Keras (weights, shuffling, dropout).
    features : extractor, default ClipStatistics()
        Clip-level features work best (one vector per clip); with frame-level
        ones each window is embedded and scored, and a clip's score is the
        ``aggregate`` of its windows (slow).
    channel, threshold, holdout, aggregate, random_state
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Attributes
    ----------
    classes_ : list of str
        The auxiliary classes learnt.
    history_ : dict of str to list of float
        Keras training history (``loss``, ``accuracy``).

    Examples
    --------
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(i % 2 * 3, 1, (1, 8)).astype("float32") for i in range(40)]
    >>> ids = ["fan/id_00", "fan/id_02"] * 20
    >>> detector = AuxiliaryClassifierDetector(epochs=5, threshold=3.0).fit(ClipFeatures.from_arrays(clips), groups=ids)
    >>> detector.classes_
    ['fan/id_00||', 'fan/id_02||']
    >>> detector.score(ClipFeatures.from_arrays(clips[:2])).shape
    (2,)
    """

    _parameter_constraints: ClassVar[Constraints] = {
        "hidden": [Satisfies(int_tuple, "a non-empty tuple of positive ints")],
        "embedding": [Interval(int, 2, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "dropout": [Interval(float, 0, 1, closed="left")],
        "label_smoothing": [Interval(float, 0, 1, closed="left")],
        "n_neighbors": [Interval(int, 1, None)],
        "seed": [Interval(int, None, None), None],
    }

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256,),
        embedding: int = 64,
        epochs: int = 120,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        dropout: float = 0.5,
        label_smoothing: float = 0.1,
        n_neighbors: int = 1,
        seed: int | None = 0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.hidden = hidden
        self.embedding = embedding
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.n_neighbors = n_neighbors
        self.seed = seed

    @classmethod
    def _default_features(cls) -> Any:
        return ClipStatistics()

    def _dims(self) -> list[int]:
        return [self.n_features_in_, *(int(u) for u in self.hidden), int(self.embedding)]

    # -- fitting ------------------------------------------------------------------
    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        sessions = getattr(self, "_fit_sessions", None)
        paths = list(features.paths) if features.paths else [""] * len(features)
        classes = auxiliary_labels(paths, getattr(self, "_fit_groups", None), sessions)
        self.classes_ = sorted(set(classes.tolist()))
        if len(self.classes_) < 2:
            raise ParameterError(
                "AuxiliaryClassifierDetector needs at least 2 classes to learn (machine ids or sections, DCASE "
                f"domains or file-name attributes); the training clips all carry {self.classes_}. Use "
                "DomainKNNDetector for a single machine"
            )
        if len(self.classes_) > MAX_CLASSES:
            raise ParameterError(f"{len(self.classes_)} auxiliary classes; at most {MAX_CLASSES} are supported")
        x = features.windows.astype(np.float64)
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.maximum(x.std(axis=0), 1e-6)
        lookup = {c: i for i, c in enumerate(self.classes_)}
        y = np.repeat(np.array([lookup[str(c)] for c in classes]), np.diff(features.offsets))
        self.weights_ = self._train(((x - self.mean_) / self.scale_).astype(np.float32), y)
        per_window = np.repeat(session_labels(sessions, len(features)), np.diff(features.offsets))
        self.banks_ = MemoryBanks(n_neighbors=self.n_neighbors, metric="cosine").fit(self.embed(x), per_window)

    def _train(self, x: FloatArray, y: npt.NDArray[np.int64]) -> list[FloatArray]:
        try:
            import keras
        except ImportError as exc:  # pragma: no cover - the tf extra is installed in tests
            raise MissingDependencyError("keras", "tf", "training the AuxiliaryClassifierDetector") from exc
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        inputs = keras.Input(shape=(x.shape[1],))
        h = inputs
        for units in self.hidden:
            if self.dropout:
                h = keras.layers.Dropout(self.dropout)(h)
            h = keras.layers.Dense(int(units), activation="relu")(h)
        if self.dropout:
            h = keras.layers.Dropout(self.dropout)(h)
        embedded = keras.layers.Dense(int(self.embedding), name="embedding")(h)
        outputs = keras.layers.Dense(len(self.classes_))(keras.layers.Activation("relu")(embedded))
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.label_smoothing),
            metrics=["accuracy"],
        )
        onehot = np.eye(len(self.classes_), dtype=np.float32)[y]
        history = model.fit(x, onehot, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0)
        self.history_ = {k: [float(v) for v in values] for k, values in history.history.items()}
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]  # drop the head
        return [np.asarray(w, dtype=np.float32) for layer in dense for w in layer.get_weights()]

    # -- scoring ------------------------------------------------------------------
    def embed(self, windows: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The embedding of each feature window, shape ``(n_windows, embedding)`` (NumPy, no Keras)."""
        h = (np.asarray(windows, dtype=np.float64) - self.mean_) / self.scale_
        layers = list(zip(self.weights_[0::2], self.weights_[1::2], strict=True))
        for i, (w, b) in enumerate(layers):
            h = h @ w.astype(np.float64) + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0.0)
        return np.asarray(h, dtype=np.float64)

    def _adapt(self, features: ClipFeatures, sessions: npt.ArrayLike) -> None:
        """Add (or extend) the memory bank of each session with these clips' embeddings; the network is kept."""
        self._checked(features)
        per_clip = session_labels(sessions, len(features))
        self.banks_.add(self.embed(features.windows), np.repeat(per_clip, np.diff(features.offsets)))

    @property
    def sessions_(self) -> list[str]:
        """The memory banks' sessions."""
        return list(self.banks_.names)

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        return self.banks_.score(self.embed(windows))

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        if all(np.diff(features.offsets) == 1):  # each training clip left out of its own bank
            per_clip = session_labels(getattr(self, "_fit_sessions", None), len(features))
            order = np.concatenate([np.flatnonzero(per_clip == name) for name in self.banks_.names])
            scores = np.empty(len(features))
            scores[order] = self.banks_.member_scores()
            return scores
        return self._score_features(features)

    # -- persistence --------------------------------------------------------------
    def _get_state(self) -> dict[str, FloatArray]:
        state: dict[str, Any] = {"mean": self.mean_, "scale": self.scale_}
        state.update({f"w{i}": w for i, w in enumerate(self.weights_)})
        state.update(self.banks_.state())
        return state

    def _state_spec(self) -> dict[str, tuple[int | None, ...]]:
        dims = self._dims()
        spec: dict[str, tuple[int | None, ...]] = {"mean": (dims[0],), "scale": (dims[0],)}
        for i in range(len(dims) - 1):
            spec[f"w{2 * i}"] = (dims[i], dims[i + 1])
            spec[f"w{2 * i + 1}"] = (dims[i + 1],)
        spec.update(self.banks_.state_spec(dims[-1]))
        return spec

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.mean_ = state["mean"].astype(np.float64)
        self.scale_ = state["scale"].astype(np.float64)
        if not (self.scale_ > 0).all():
            raise ValueError("feature scales must be positive")
        n_weights = 2 * (len(self._dims()) - 1)
        self.weights_ = [state[f"w{i}"].astype(np.float32) for i in range(n_weights)]
        self.banks_.set_state(state)

    def _manifest_extra(self) -> dict[str, Any]:
        return {"classes": list(self.classes_), "sessions": list(self.banks_.names), "history": self.history_}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        classes = extra["classes"]
        if not isinstance(classes, list) or len(classes) > MAX_CLASSES or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a list of at most {MAX_CLASSES} strings")
        history = extra.get("history", {})
        if not isinstance(history, dict):
            raise ValueError("history must be an object")
        self.classes_ = list(classes)
        self.history_ = dict(history)
        self.banks_ = MemoryBanks(n_neighbors=self.n_neighbors, metric="cosine")
        self.banks_.set_names(extra["sessions"])
