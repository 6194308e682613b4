"""SageMaker training entry point: runs inside the TensorFlow training container.

Shipped inside the package and staged by :class:`SageMakerBackend` next to a
copy of the modules it imports, so the container trains the very model the
local backend trains (``soundanomaly.backends.local`` is the one source of
truth for the architecture).

Container contract
------------------
* Input: ``SM_CHANNEL_TRAIN`` holds ``shard-*.npy`` files of feature windows,
  shape ``(n, n_features)``, float32.
* Hyperparameters as command-line flags (SageMaker passes them so):
  ``--epochs --batch-size --learning-rate --validation-split --early-stopping
  --seed --hidden --n_mels --frames``.
* Output: ``SM_MODEL_DIR`` receives ``weights.npz`` and ``history.json`` (read
  by soundanomaly) and ``1/`` (a TensorFlow SavedModel for TF Serving
  endpoints and batch transform).
* Managed spot training: checkpoints in ``/opt/ml/checkpoints`` (or
  ``SM_CHECKPOINT_DIR``); an interrupted job resumes from the last epoch.
  ``--fingerprint`` (a hash of the data URI and hyperparameters, set by the
  backend) is stored with every checkpoint; a checkpoint with another
  fingerprint is ignored, so a folder shared by mistake never mixes runs.

Runs on the image's own Python and Keras (TF 2.16 images: Python 3.10,
Keras 3.4): no ``typing.Self``, no Keras >= 3.6 API (``tests/test_aws_container.py``
runs this script under that Python, TensorFlow and Keras).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=512)
    parser.add_argument("--learning-rate", "--learning_rate", dest="learning_rate", type=float, default=1e-3)
    parser.add_argument("--validation-split", dest="validation_split", type=float, default=0.1)
    parser.add_argument("--early-stopping", dest="early_stopping", type=int, default=0, help="patience; 0 = off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=str, default="[64, 64, 8, 64, 64]", help="JSON list of layer sizes")
    parser.add_argument("--n_mels", "--n-mels", dest="n_mels", type=int, default=64)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--fingerprint", type=str, default="", help="identifies the run that owns checkpoints")
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument("--model-dir", dest="model_dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument(
        "--checkpoint-dir", dest="checkpoint_dir", default=os.environ.get("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints")
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np

    import soundanomaly
    from soundanomaly.backends.local import LocalBackend, build_autoencoder

    print(f"soundanomaly modules from {os.path.dirname(soundanomaly.__file__)}", flush=True)
    print(f"python {sys.version.split()[0]}", flush=True)

    shards = sorted(glob.glob(os.path.join(args.train, "**", "shard-*.npy"), recursive=True))
    if not shards:
        print(f"no shard-*.npy files in {args.train}", file=sys.stderr)
        return 1
    windows = np.concatenate([np.load(path) for path in shards]).astype(np.float32)
    if windows.shape[1] != args.n_mels * args.frames:
        print(
            f"windows have {windows.shape[1]} values, expected n_mels*frames={args.n_mels * args.frames}",
            file=sys.stderr,
        )
        return 1
    print(f"training on {len(windows)} windows from {len(shards)} shard(s)", flush=True)
    hidden = tuple(int(u) for u in json.loads(args.hidden))
    checkpoint_dir = args.checkpoint_dir if os.path.isdir(os.path.dirname(args.checkpoint_dir) or ".") else None
    result = LocalBackend().train(
        windows,
        hidden=hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        validation_split=args.validation_split,
        early_stopping=args.early_stopping or None,
        seed=args.seed,
        verbose=2,
        checkpoint_dir=checkpoint_dir,
        checkpoint_fingerprint=args.fingerprint,
    )
    os.makedirs(args.model_dir, exist_ok=True)
    arrays = {f"w{i}": w for i, w in enumerate(result.weights)}
    np.savez(os.path.join(args.model_dir, "weights.npz"), **arrays)  # type: ignore[arg-type]
    with open(os.path.join(args.model_dir, "history.json"), "w") as handle:
        json.dump(result.history, handle)
    model = build_autoencoder(windows.shape[1], hidden)
    model.set_weights(result.weights)
    model.export(os.path.join(args.model_dir, "1"))  # SavedModel for TF Serving (Keras >= 3.0 signature)
    print(f"final loss {result.history['loss'][-1]:.5f}; model written to {args.model_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
