"""The physics of a synthetic fan: its parameters, its own sound, and the factory around it.

:mod:`soundanomaly.datasets.synthetic` (clips and MIMII-layout data sets) and
:mod:`soundanomaly.datasets.shift` (domain-shift sets) build on these functions;
``synthetic`` re-exports :class:`FanModel`, :func:`fan_model`, :func:`machine_sound`
and :func:`factory_background`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.signal

from soundanomaly.exceptions import ParameterError

__all__ = [
    "FanModel",
    "band_noise",
    "bearing_impacts",
    "check_clip_params",
    "factory_background",
    "fan_model",
    "machine_sound",
    "mix_at_snr",
    "smooth_gate",
]

_F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FanModel:
    """Physical parameters of one machine id.

    Attributes
    ----------
    rpm : float
        Nominal shaft speed in revolutions per minute.
    n_blades : int
        Number of blades; the blade-pass frequency is ``rpm / 60 * n_blades`` Hz.
    harmonic_decay : float
        Amplitude ratio between successive blade-pass harmonics (0-1).
    noise_centre_hz : float
        Centre of the aerodynamic-noise band in Hz.
    noise_level : float
        Broadband-noise RMS relative to the blade tone's amplitude.
    hum_level : float
        Motor-hum amplitude relative to the blade tone's.
    mains_hz : float
        Mains frequency (hum at twice it).

    Examples
    --------
    >>> model = FanModel(rpm=1500, n_blades=6, harmonic_decay=0.5, noise_centre_hz=1200, noise_level=1.0, hum_level=0.2)
    >>> model.shaft_hz, model.blade_pass_hz
    (25.0, 150.0)

    """

    rpm: float
    n_blades: int
    harmonic_decay: float
    noise_centre_hz: float
    noise_level: float
    hum_level: float
    mains_hz: float = 50.0

    @property
    def shaft_hz(self) -> float:
        """Shaft rotation frequency in Hz."""
        return self.rpm / 60.0

    @property
    def blade_pass_hz(self) -> float:
        """Blade-pass frequency in Hz."""
        return self.shaft_hz * self.n_blades


def fan_model(machine_id: int, *, seed: int = 0) -> FanModel:
    """The fan model of ``machine_id``: a fixed draw of physical parameters.

    Examples
    --------
    >>> m = fan_model(0)
    >>> 900 <= m.rpm <= 1800 and 4 <= m.n_blades <= 9
    True
    """
    rng = np.random.default_rng([seed, machine_id, 7919])
    return FanModel(
        rpm=float(rng.uniform(900, 1800)),
        n_blades=int(rng.integers(4, 10)),
        harmonic_decay=float(rng.uniform(0.35, 0.7)),
        noise_centre_hz=float(rng.uniform(600, 2500)),
        noise_level=float(rng.uniform(0.5, 1.2)),
        hum_level=float(rng.uniform(0.1, 0.4)),
    )


def machine_sound(model: FanModel, anomaly: str | None, s: float, rng: np.random.Generator, n: int, sr: int) -> _F64:
    """The fan's own sound (no background): ``n`` samples at ``sr`` Hz, drawing from ``rng`` in a fixed order.

    ``s`` is the fault severity (0 for a healthy fan); the level is not normalised
    (blade tone amplitude about 1). :mod:`soundanomaly.datasets.shift` builds on it.

    Examples
    --------
    >>> sound = machine_sound(fan_model(0), None, 0.0, np.random.default_rng(0), 1600, 16000)
    >>> sound.shape
    (1600,)
    """
    t = np.arange(n) / sr
    # Speed: per-clip jitter plus a slow wobble; a voltage change shifts and shakes it.
    speed = 1.0 + rng.normal(0.0, 0.004)
    wobble_depth = 0.002
    hum_gain = 1.0
    if anomaly == "voltage_change":
        speed *= 1.0 + rng.choice([-1.0, 1.0]) * (0.02 + 0.08 * s)
        wobble_depth += 0.02 * s
        hum_gain += 3.0 * s
    wobble = wobble_depth * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    shaft_phase = 2 * np.pi * np.cumsum(model.shaft_hz * speed * (1.0 + wobble)) / sr

    # Blade-pass tone and harmonics; clogging weakens the tones (less flow).
    tone_gain = (1.0 - 0.5 * s if anomaly == "clogging" else 1.0) * rng.uniform(0.95, 1.05)
    machine = np.zeros(n)
    for k in range(1, 7):
        amp = tone_gain * model.harmonic_decay ** (k - 1)
        machine += amp * np.sin(k * model.n_blades * shaft_phase + rng.uniform(0, 2 * np.pi))
    shaft_amp = 0.05 + (1.2 * s if anomaly == "imbalance" else 0.0)
    machine += shaft_amp * np.sin(shaft_phase + rng.uniform(0, 2 * np.pi))
    if anomaly == "imbalance":
        machine *= 1.0 + 0.6 * s * np.sin(shaft_phase + rng.uniform(0, 2 * np.pi))
        machine += 0.4 * s * np.sin(2 * shaft_phase + rng.uniform(0, 2 * np.pi))

    # Motor hum at 2x mains and harmonics.
    hum_hz = 2 * model.mains_hz
    for k in range(1, 4):
        machine += hum_gain * model.hum_level / k * np.sin(2 * np.pi * k * hum_hz * t + rng.uniform(0, 2 * np.pi))
    if anomaly == "voltage_change":  # rough hum: odd harmonics of mains from saturation
        machine += 0.3 * s * np.sin(2 * np.pi * 3 * model.mains_hz * t + rng.uniform(0, 2 * np.pi))

    # Aerodynamic broadband noise, modulated at the blade-pass rate.
    centre = model.noise_centre_hz * (1.0 + (0.6 * s if anomaly == "clogging" else 0.0))
    noise = band_noise(rng, n, sr, centre, bandwidth_octaves=1.5)
    noise *= 1.0 + 0.3 * np.sin(model.n_blades * shaft_phase)
    noise_gain = model.noise_level * (1.0 + (1.5 * s if anomaly == "clogging" else 0.0))
    if anomaly == "clogging":  # intermittent turbulence bursts
        bursts = smooth_gate(rng, n, sr, rate_hz=1.5, duty=0.3)
        noise *= 1.0 + 2.0 * s * bursts
    machine += noise_gain * noise / (np.std(noise) + 1e-12) * 0.5

    if anomaly == "bearing_wear":
        machine += s * bearing_impacts(rng, n, sr, model.shaft_hz * speed * 3.57)

    return machine


def check_clip_params(*, sr: int, duration: float, severity: float) -> None:
    """Refuse a sample rate under 1 kHz, a non-positive duration or a severity outside (0, 1].

    Examples
    --------
    >>> check_clip_params(sr=16000, duration=1.0, severity=0.5)
    """
    if not isinstance(sr, int) or sr < 1000:
        raise ParameterError(f"sr must be an int >= 1000 Hz, got {sr!r}")
    if not duration > 0:
        raise ParameterError(f"duration must be > 0 seconds, got {duration!r}")
    if not 0.0 < severity <= 1.0:
        raise ParameterError(f"severity must be in (0, 1], got {severity!r}")


def band_noise(rng: np.random.Generator, n: int, sr: int, centre: float, *, bandwidth_octaves: float) -> _F64:
    """Band-pass noise around ``centre`` Hz, ``bandwidth_octaves`` wide, with a little white hiss.

    Examples
    --------
    >>> band_noise(np.random.default_rng(0), 1600, 16000, 1000.0, bandwidth_octaves=1.0).shape
    (1600,)
    """
    low = max(20.0, centre / 2 ** (bandwidth_octaves / 2))
    high = min(0.45 * sr, centre * 2 ** (bandwidth_octaves / 2))
    sos = scipy.signal.butter(2, [low, high], btype="bandpass", fs=sr, output="sos")
    white = rng.standard_normal(n)
    # A little unfiltered hiss too: real turbulence is not perfectly band-limited.
    return np.asarray(scipy.signal.sosfilt(sos, white) + 0.05 * white)


def smooth_gate(rng: np.random.Generator, n: int, sr: int, *, rate_hz: float, duty: float) -> _F64:
    """A 0..1 envelope that switches on about ``rate_hz`` times a second, ``duty`` of the time.

    Examples
    --------
    >>> gate = smooth_gate(np.random.default_rng(0), 16000, 16000, rate_hz=1.5, duty=0.3)
    >>> gate.shape, bool(gate.min() >= 0.0 and gate.max() <= 1.0 + 1e-9)
    ((16000,), True)
    """
    hop = max(1, int(sr / (rate_hz * 4)))
    steps = (rng.random(n // hop + 2) < duty).astype(float)
    gate = np.repeat(steps, hop)[:n]
    kernel = np.hanning(hop * 2 + 1)
    if n < len(kernel):  # "same" would return the kernel's length for clips shorter than it
        return np.asarray(np.convolve(gate, kernel / kernel.sum(), mode="full")[hop : hop + n])
    return np.asarray(np.convolve(gate, kernel / kernel.sum(), mode="same"))


def bearing_impacts(rng: np.random.Generator, n: int, sr: int, defect_hz: float) -> _F64:
    """Ringing impacts at ``defect_hz`` (a worn bearing), band-passed at 2.6-3.4 kHz.

    Examples
    --------
    >>> bearing_impacts(np.random.default_rng(0), 1600, 16000, 90.0).shape
    (1600,)
    """
    impulses = np.zeros(n)
    period = sr / defect_hz
    count = int(np.ceil(n / period))
    positions = (np.arange(count) * period + rng.normal(0, 0.02 * period, count)).astype(int)
    positions = positions[(positions >= 0) & (positions < n)]
    impulses[positions] = rng.uniform(0.5, 1.0, len(positions))
    sos = scipy.signal.butter(2, [2600, 3400], btype="bandpass", fs=sr, output="sos")
    ring = scipy.signal.sosfilt(sos, impulses)
    return np.asarray(ring / (np.std(ring) + 1e-12) * 0.3)


def factory_background(rng: np.random.Generator, n: int, sr: int) -> _F64:
    """Pink noise, a few distant machine tones and sparse impacts: ``n`` samples, unit-ish RMS.

    Examples
    --------
    >>> factory_background(np.random.default_rng(0), 1600, 16000).shape
    (1600,)
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    pink = np.fft.irfft(spectrum, n)
    pink /= np.std(pink) + 1e-12
    t = np.arange(n) / sr
    for _ in range(3):
        pink += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(60, 4000) * t + rng.uniform(0, 2 * np.pi))
    for position in rng.integers(0, n, rng.poisson(2)):
        length = min(n - position, sr // 20)
        pink[position : position + length] += (
            rng.uniform(1, 4) * rng.standard_normal(length) * np.exp(-np.arange(length) / (sr / 200))
        )
    return np.asarray(pink)


def mix_at_snr(machine: _F64, background: _F64, snr_db: float) -> _F64:
    """``machine`` plus ``background`` scaled to ``snr_db`` dB below it (by mean power).

    Examples
    --------
    >>> mixed = mix_at_snr(np.ones(4), np.ones(4), 0.0)
    >>> mixed.tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    p_machine = np.mean(machine**2)
    p_background = np.mean(background**2) + 1e-20
    scale = np.sqrt(p_machine / (p_background * 10 ** (snr_db / 10)))
    return np.asarray(machine + scale * background)
