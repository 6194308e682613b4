"""Speed of the shift-robust detectors (#22), as ratios against GaussianDetector in the same run.

(1) End-to-end scoring (read the WAV, extract features, score) of ``--clips``
10 s clips on one core, in ms per clip and relative to ``GaussianDetector``
(the library's reference; default log-mel frames). (2) Training time of
``AuxiliaryClassifierDetector`` on ``--train-clips`` clip vectors (default
1,000) with the cores this process may use. Not part of the test suite::

    python benchmarks/shift_detectors.py                 # 50 clips scored, 1,000 to train
    python benchmarks/shift_detectors.py --clips 20 --train-clips 300   # quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import pin_one_core, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=50, help="clips scored per detector")
    parser.add_argument("--train-clips", type=int, default=1000, help="clip vectors the auxiliary classifier trains on")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_only:
        train_auxiliary(args.train_clips)
        return

    import numpy as np
    import soundfile as sf

    if not args.skip_training:  # in a child process: TensorFlow's thread pools are fixed at its first use
        subprocess.run([sys.executable, __file__, "--train-only", "--train-clips", str(args.train_clips)], check=True)
    pin_one_core()
    from soundanomaly.datasets.shift import iter_shift_clips
    from soundanomaly.detectors import (
        AuxiliaryClassifierDetector,
        ClipStatsDetector,
        DomainKNNDetector,
        GaussianDetector,
        SelectiveMahalanobisDetector,
        TWFRGMMDetector,
    )

    with tempfile.TemporaryDirectory() as tmp:
        train, sessions, test = [], [], []
        clips = iter_shift_clips(sections=[0], n_source=60, n_target=10, n_test=max(1, args.clips // 4), seed=11)
        for record, signal in clips:
            path = Path(tmp) / record.path
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.asarray(signal, dtype=np.float32), 16000, subtype="PCM_16")
            if record.split == "train":
                train.append(str(path))
                sessions.append(record.domain or "")
            else:
                test.append(str(path))
        test = test[: args.clips]
        detectors = {
            "GaussianDetector (reference)": GaussianDetector(threshold=1.0),
            "ClipStatsDetector": ClipStatsDetector(threshold=1.0),
            "DomainKNNDetector": DomainKNNDetector(threshold=1.0),
            "SelectiveMahalanobisDetector": SelectiveMahalanobisDetector(threshold=1.0),
            "TWFRGMMDetector": TWFRGMMDetector(threshold=1.0),
            "AuxiliaryClassifierDetector": AuxiliaryClassifierDetector(threshold=1.0, epochs=20),
        }
        reference = None
        print(f"(1) end-to-end scoring of {len(test)} 10 s clips on one core (best of 3)")
        for name, detector in detectors.items():
            detector.fit(train, sessions=sessions)
            detector.score(test[:2])  # warm caches (mel basis, FFT plans)
            seconds, _ = timed(detector.score, test, repeat=3)
            ms = 1000 * seconds / len(test)
            reference = reference or ms
            print(f"    {name:32s} {ms:7.2f} ms/clip  {ms / reference:5.2f}x Gaussian")


def train_auxiliary(n_clips: int) -> None:
    """Time AuxiliaryClassifierDetector.fit on n_clips ClipStatistics-sized vectors (10 classes)."""
    import numpy as np

    from soundanomaly.detectors import AuxiliaryClassifierDetector
    from soundanomaly.features import ClipFeatures

    rng = np.random.default_rng(0)
    classes = rng.integers(0, 10, n_clips)
    centres = rng.normal(0, 3, (10, 1152))
    arrays = [(centres[c] + rng.normal(0, 1, 1152))[None, :].astype(np.float32) for c in classes]
    features = ClipFeatures.from_arrays(arrays)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    detector = AuxiliaryClassifierDetector()
    start = time.perf_counter()
    detector.fit(features, groups=[f"fan/id_{c:02d}" for c in classes])
    seconds = time.perf_counter() - start
    print(
        f"(2) AuxiliaryClassifierDetector.fit on {n_clips} clip vectors, {detector.epochs} epochs, "
        f"{cores} core(s): {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
