"""
Deploy at the edge
==================

Train on a workstation, then score on a gateway that has only NumPy and ONNX
Runtime. This example fits the Gaussian baseline, exports it as one ONNX file
(raw audio in, score and label out, the whole log-mel front end inside),
checks that the file scores exactly as the library, and streams a recording
through :class:`~soundanomaly.edge.EdgeMonitor`, printing the JSON lines a
gateway would forward to the cloud.
"""

# %%
# Train, then export one file
# ---------------------------
# Ten 4-second clips of synthetic fan ``id_00``; the exported window is 4 s,
# the training clips' length, so scores stay on the scale of the threshold.
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from soundanomaly import edge
from soundanomaly.datasets.synthetic import generate_clip
from soundanomaly.detectors import GaussianDetector
from soundanomaly.export import save_onnx
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.monitor import fault_onset_stream

SR = 16000
features = LogMelFrames()
train = ClipFeatures.from_arrays(
    [features.transform(generate_clip(0, duration=4.0, clip_index=100 + i), SR) for i in range(10)],
    params=features.params(),
)
detector = GaussianDetector(shrinkage=0.2, threshold=1.5).fit(train)
folder = Path(tempfile.mkdtemp())
path = save_onnx(detector, folder / "fan.onnx", window_seconds=4.0)
print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")

# %%
# The edge runtime checks the file, then scores
# ---------------------------------------------
# :class:`~soundanomaly.edge.EdgeModel` refuses any operator, subgraph or
# external-data reference an export never holds and checks the metadata
# before ONNX Runtime sees the file. Its scores equal the library's.
model = edge.EdgeModel(path)
print({k: model.info.metadata[k] for k in ("detector", "sample_rate", "window_samples", "threshold")})
clips = [generate_clip(0, duration=4.0, clip_index=900 + i) for i in range(3)]
clips += [generate_clip(0, anomaly="imbalance", duration=4.0, clip_index=950 + i) for i in range(3)]
library = detector.score(ClipFeatures.from_arrays([features.transform(c, SR) for c in clips]))
exported = np.array([model.score_window(c)[0] for c in clips])
print("largest relative difference:", float(np.max(np.abs(exported - library) / library)))

# %%
# A live stream, as a gateway runs it
# -----------------------------------
# 20 s of normal running, then an imbalance. A window every second; an alert
# needs 2 of the last 3 windows above the threshold (the library's Monitor
# rule). Each record is one JSON line; ``python -m soundanomaly.edge
# fan.onnx -`` does the same with a WAV stream on standard input.
signal, onset = fault_onset_stream(0, anomaly="imbalance", normal_seconds=20.0, fault_seconds=12.0, clip_index=3)
runner = edge.EdgeMonitor(model, hop_seconds=1.0, source="mic-0")
records = [r for start in range(0, len(signal), SR // 10) for r in runner.push(signal[start : start + SR // 10])]
for record in records:
    if record.kind != "window":
        print(record.to_json())
print(f"true onset {onset:.0f} s")

windows = [r for r in records if r.kind == "window"]
plt.plot([w.end for w in windows], [w.score for w in windows], marker=".", label="window score (edge)")
plt.axhline(model.info.threshold, color="k", linestyle="--", label="threshold")
plt.axvline(onset, color="r", alpha=0.5, label="fault onset")
plt.xlabel("time (s)")
plt.ylabel("anomaly score")
plt.legend()
plt.show()
print(json.dumps({"windows": len(windows), "alerts": sum(r.kind == "alert" for r in records)}))
