"""Local backend: Keras 3 on TensorFlow, on this machine's CPU (or GPU).

This module is the single source of truth for the autoencoder's
architecture (:func:`build_autoencoder`); other backends train the same model.

It is also staged into the SageMaker training container (see
:mod:`soundanomaly.backends.sagemaker`), whose Python and Keras are older than
this package's: it must import on Python 3.10 with only NumPy and Keras >= 3.0
(no ``typing.Self``, no other soundanomaly module at run time, no Keras >= 3.6
API). ``tests/test_aws_container.py`` checks this.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from soundanomaly.typing import FloatArray

__all__ = ["LocalBackend", "TrainResult", "build_autoencoder"]

_log = logging.getLogger("soundanomaly.backends.local")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class TrainResult:
    """Weights as ``[kernel_0, bias_0, kernel_1, bias_1, ...]`` (float32), Keras history, artifact URI."""

    weights: list[FloatArray]
    history: dict[str, list[float]] = field(default_factory=dict)
    model_data: str | None = None  # where a cloud backend stored the model (S3 URI)


def build_autoencoder(
    input_dim: int, hidden: tuple[int, ...] = (64, 64, 8, 64, 64), *, learning_rate: float = 1e-3
) -> Any:
    """The dense autoencoder: ReLU hidden layers, linear output, Adam + MSE.

    Returns a compiled ``keras.Model`` mapping ``(batch, input_dim)`` to itself.
    """
    import keras

    inputs = keras.Input(shape=(input_dim,), name="frames")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(input_dim, activation=None, name="reconstruction")(x)
    model = keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


class LocalBackend:
    """Trains the autoencoder in this process with Keras."""

    name = "local"

    def train(
        self,
        windows: FloatArray,
        *,
        hidden: tuple[int, ...],
        epochs: int,
        batch_size: int,
        learning_rate: float,
        validation_split: float,
        early_stopping: int | None,
        seed: int | None,
        verbose: int,
        initial_weights: list[FloatArray] | None = None,
        checkpoint_dir: str | None = None,
        checkpoint_fingerprint: str = "",
        feature_params: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Fit on ``windows`` (n_windows, n_features) and return the weights.

        With ``checkpoint_dir``, the weights, the history so far and
        ``checkpoint_fingerprint`` are saved there after every epoch, and
        training resumes from the last saved epoch (managed spot training). A
        checkpoint whose fingerprint or weight shapes differ (another job's,
        other data or hyperparameters) is ignored, and one saved after the last
        epoch is returned as is. ``feature_params`` is accepted for interface
        parity with cloud backends.
        """
        import keras

        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = build_autoencoder(windows.shape[1], hidden, learning_rate=learning_rate)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        callbacks: list[Any] = []
        initial_epoch = 0
        past: dict[str, list[float]] = {}
        if checkpoint_dir is not None:
            initial_epoch, past = _restore_checkpoint(model, checkpoint_dir, checkpoint_fingerprint)
            if initial_epoch >= epochs:  # the job was interrupted after its last epoch was saved
                weights = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
                return TrainResult(weights, past)
            callbacks.append(_epoch_checkpoint(checkpoint_dir, checkpoint_fingerprint, past))
        if early_stopping is not None:
            monitor = "val_loss" if validation_split > 0 else "loss"
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping, restore_best_weights=True)
            )
        history = model.fit(
            windows,
            windows,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            shuffle=True,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
            verbose=verbose,
        )
        weights = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
        new = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        return TrainResult(weights, {k: past.get(k, []) + new.get(k, []) for k in {*past, *new}})


def _restore_checkpoint(model: Any, checkpoint_dir: str, fingerprint: str) -> tuple[int, dict[str, list[float]]]:
    """Load the last checkpoint into ``model``; return ``(epoch to resume from, history so far)``.

    ``(0, {})`` when there is none, or when it belongs to another run: another
    fingerprint, or weights of other shapes.
    """
    path = os.path.join(checkpoint_dir, "checkpoint.npz")
    if not os.path.exists(path):
        return 0, {}
    try:
        with np.load(path) as data:
            saved = str(data["fingerprint"]) if "fingerprint" in data.files else None
            history = json.loads(str(data["history"])) if "history" in data.files else {}
            epoch = int(data["epoch"])
            weights = [data[f"w{i}"] for i in range(sum(1 for key in data.files if key.startswith("w")))]
    except (OSError, ValueError, KeyError) as exc:
        _log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return 0, {}
    if saved != fingerprint:
        _log.warning("ignoring checkpoint %s of another run (fingerprint %r, expected %r)", path, saved, fingerprint)
        return 0, {}
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [tuple(w.shape) for w in weights] != expected:
        _log.warning("ignoring checkpoint %s: its weights do not fit this model", path)
        return 0, {}
    model.set_weights(weights)
    _log.info("resuming from %s after epoch %d", path, epoch)
    return epoch, {str(k): [float(v) for v in vals] for k, vals in history.items()}


def _epoch_checkpoint(checkpoint_dir: str, fingerprint: str, past: dict[str, list[float]]) -> Any:
    """A Keras callback that saves weights, epoch count, history and fingerprint after every epoch, atomically."""
    import keras

    history = {k: list(v) for k, v in past.items()}

    class EpochCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            for key, value in (logs or {}).items():
                history.setdefault(str(key), []).append(float(value))
            os.makedirs(checkpoint_dir, exist_ok=True)
            arrays = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
            tmp = os.path.join(checkpoint_dir, "checkpoint.tmp.npz")
            np.savez(
                tmp,
                epoch=np.int64(epoch + 1),
                fingerprint=np.str_(fingerprint),
                history=np.str_(json.dumps(history)),
                **arrays,
            )
            os.replace(tmp, os.path.join(checkpoint_dir, "checkpoint.npz"))

    return EpochCheckpoint()
