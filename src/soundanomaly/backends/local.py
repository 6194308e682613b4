"""Local backend: Keras 3 on TensorFlow, on this machine's CPU (or GPU).

This module is the single source of truth for the autoencoder's
architecture (:func:`build_autoencoder`); other backends train the same model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soundanomaly.typing import FloatArray

__all__ = ["LocalBackend", "TrainResult", "build_autoencoder"]

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
        feature_params: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Fit on ``windows`` (n_windows, n_features) and return the weights.

        With ``checkpoint_dir``, the weights are saved there after every epoch
        and training resumes from the last saved epoch (managed spot training).
        ``feature_params`` is accepted for interface parity with cloud backends.
        """
        import keras

        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = build_autoencoder(windows.shape[1], hidden, learning_rate=learning_rate)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        callbacks: list[Any] = []
        initial_epoch = 0
        if checkpoint_dir is not None:
            initial_epoch = _restore_checkpoint(model, checkpoint_dir)
            callbacks.append(_epoch_checkpoint(checkpoint_dir))
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
            initial_epoch=min(initial_epoch, epochs),
            verbose=verbose,
        )
        weights = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
        return TrainResult(weights, {k: [float(v) for v in vals] for k, vals in history.history.items()})


def _restore_checkpoint(model: Any, checkpoint_dir: str) -> int:
    """Load the last checkpoint into ``model``; return the epoch to resume from (0 if none)."""
    path = os.path.join(checkpoint_dir, "checkpoint.npz")
    if not os.path.exists(path):
        return 0
    with np.load(path) as data:
        model.set_weights([data[f"w{i}"] for i in range(len(data.files) - 1)])
        return int(data["epoch"])


def _epoch_checkpoint(checkpoint_dir: str) -> Any:
    """A Keras callback that saves the weights and epoch count after every epoch, atomically."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            os.makedirs(checkpoint_dir, exist_ok=True)
            arrays = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
            tmp = os.path.join(checkpoint_dir, "checkpoint.tmp.npz")
            np.savez(tmp, epoch=np.int64(epoch + 1), **arrays)
            os.replace(tmp, os.path.join(checkpoint_dir, "checkpoint.npz"))

    return EpochCheckpoint()
