"""
Exploring machine sound
=======================

Load a normal and an abnormal fan clip, then look at them the way the first
reference notebook does: waveforms side by side, the spectrum of the first
64 ms, and spectrograms in dB. This runs on the synthetic fans that ship with
soundanomaly, and on real MIMII recordings when they are present beside the
repository (``../shared/data/mimii-fan``).
"""

# %%
# A small synthetic data set in the MIMII layout
# ----------------------------------------------
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from soundanomaly import plots
from soundanomaly.audio import load
from soundanomaly.datasets import MIMII, synthetic

root = synthetic.write_dataset(
    Path(tempfile.mkdtemp()) / "fans", ids=[0, 2], n_normal=2, n_abnormal=3, duration=10.0, severity=0.6
)
clips = MIMII(root)
print(clips)
for record in clips[:3]:
    print(record.group, record.label, Path(record.path).name)

# %%
# Waveforms
# ---------
# A fan's waveform is dense and noise-like: faults are hard to see here.
normal, sr = load(clips.filter(ids=0, label="normal")[0].path)
abnormal, _ = load(clips.filter(ids=0, label="abnormal")[0].path)  # clip 0: an imbalance fault
plots.plot_waveforms(normal, abnormal, sr)
plt.show()

# %%
# Spectrum of the first 64 ms
# ---------------------------
# One FFT window (1024 samples at 16 kHz). The imbalance fault adds energy at
# the shaft rotation frequency and sidebands around the blade-pass tone.
plots.plot_stft_window([normal, abnormal], sr)
plt.show()

# %%
# Spectrograms in dB
# ------------------
# Log-frequency axis, colour in dB relative to each clip's loudest bin.
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
plots.plot_spectrogram(normal, sr, title="normal", ax=axes[0])
plots.plot_spectrogram(abnormal, sr, title="abnormal (imbalance)", ax=axes[1])
plt.show()

# %%
# The physics behind the synthetic fans
# -------------------------------------
model = synthetic.fan_model(0)
print(f"fan id_00: {model.rpm:.0f} rpm, {model.n_blades} blades -> blade-pass tone {model.blade_pass_hz:.1f} Hz")

# %%
# Real MIMII clips, when present
# ------------------------------
candidates = [folder / "shared" / "data" / "mimii-fan" for folder in [Path.cwd(), *Path.cwd().parents]]
shared = next((c for c in candidates if c.is_dir()), None)
if shared is not None:
    real = MIMII(shared).filter(snr=0, ids=0)
    real_normal, sr = load(real.filter(label="normal")[0].path)  # microphone 0 of 8
    real_abnormal, _ = load(real.filter(label="abnormal")[0].path)
    print(f"real MIMII fan id_00 at 0 dB: {len(real_normal) / sr:.1f} s at {sr} Hz")
    plots.plot_waveforms(real_normal, real_abnormal, sr, titles=("MIMII normal", "MIMII abnormal"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    plots.plot_spectrogram(real_normal, sr, title="MIMII normal", ax=axes[0])
    plots.plot_spectrogram(real_abnormal, sr, title="MIMII abnormal", ax=axes[1])
    plt.show()
else:
    print("real MIMII clips not found beside the repository: skipped")
