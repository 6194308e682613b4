"""Synthetic industrial-fan sounds in the MIMII layout: the embedded default data set.

A fan's sound is built from its physics, one term per source:

* **Blade-pass tone** at ``BPF = rpm / 60 * n_blades`` Hz and its harmonics:
  each blade passing a fixed point (a strut, the housing) makes a pressure
  pulse. Amplitudes fall off with harmonic order.
* **Shaft tone** at ``rpm / 60`` Hz: a tiny residual imbalance of every real rotor.
* **Motor hum** at twice the mains frequency (magnetostriction, 100 Hz for
  50 Hz mains) and its harmonics.
* **Aerodynamic broadband noise**: turbulence shed by the blades, band-limited
  around a machine-specific centre frequency and amplitude-modulated at the
  blade-pass rate.
* **Factory background**: pink noise, distant machinery tones and occasional
  impacts, mixed at a chosen signal-to-noise ratio (MIMII: -6, 0, 6 dB).

Each machine id gets its own rpm, blade count, tone balance and noise colour
(like MIMII's ``id_00`` ... ``id_06``, different fan models); each clip jitters
around them (speed, level, phases, noise).

Anomalies follow MIMII's fan faults, each scaled by ``severity`` in (0, 1]:

* ``"imbalance"``: a rotor out of balance, so a strong shaft tone and the blade
  tone amplitude-modulated at shaft rate (sidebands at ``BPF ± rpm/60``).
* ``"voltage_change"``: supply voltage off nominal, so the motor runs at another
  speed (all tones shift), louder and rougher hum, speed wobble.
* ``"clogging"``: a blocked inlet or filter, so less flow, weaker and detuned
  blade tones, more and higher-pitched turbulence with intermittent bursts.
* ``"bearing_wear"`` (optional): impacts at the outer-race defect frequency
  (about 3.6 × shaft rate) ringing a structural resonance near 3 kHz.

Several microphones (:func:`generate_multichannel_clip`, ``n_mics=`` of
:func:`write_dataset`): a small circular array (MIMII's is 8 microphones) hears
the fan as a point source a few decimetres away, so each microphone gets its
own delay and level; the factory background is a diffuse field (plane waves
from many directions, coherent between close microphones at low frequencies)
plus a share of noise that is independent per microphone.

Everything is deterministic for a seed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, overload

import numpy as np
import numpy.typing as npt
import soundfile as sf

from soundanomaly._progress import progress as _progress
from soundanomaly.datasets.fan_physics import (
    FanModel,
    check_clip_params,
    factory_background,
    fan_model,
    machine_sound,
    mix_at_snr,
)
from soundanomaly.datasets.mimii import ClipRecord
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = [
    "ANOMALY_TYPES",
    "SPEED_OF_SOUND",
    "FanModel",
    "factory_background",
    "fan_model",
    "generate_clip",
    "generate_multichannel_clip",
    "iter_clips",
    "machine_sound",
    "mic_positions",
    "snr_folder",
    "write_clips",
    "write_dataset",
]

#: The fault types :func:`generate_clip` can simulate.
ANOMALY_TYPES: tuple[str, ...] = ("imbalance", "voltage_change", "clogging", "bearing_wear")
_DEFAULT_ANOMALIES: tuple[str, ...] = ("imbalance", "voltage_change", "clogging")
_F64 = npt.NDArray[np.float64]


def snr_folder(snr: float, machine: str = "fan") -> str:
    """MIMII's folder name for an SNR: ``6`` → ``"6_dB_fan"``, ``-6`` → ``"-6_dB_fan"``.

    Examples
    --------
    >>> snr_folder(-6), snr_folder(0, "pump")
    ('-6_dB_fan', '0_dB_pump')

    """
    return f"{snr:g}_dB_{machine}"


def generate_clip(
    machine_id: int = 0,
    *,
    anomaly: str | None = None,
    severity: float = 0.5,
    snr: float = 6.0,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    clip_index: int = 0,
) -> FloatArray:
    """Synthesise one clip of a fan, normal or with a fault.

    Parameters
    ----------
    machine_id : int >= 0
        Which fan model (see :func:`fan_model`).
    anomaly : {None, "imbalance", "voltage_change", "clogging", "bearing_wear"}
        ``None`` for a healthy fan.
    severity : float in (0, 1], default 0.5
        How strong the fault is: small values are hard to detect.
    snr : float, default 6
        Machine-to-background power ratio in dB.
    duration : float > 0, default 10
        Seconds.
    sr : int > 0, default 16000
        Sample rate in Hz.
    seed, clip_index : int
        Together with ``machine_id`` and ``anomaly`` they fix the random draw.

    Returns
    -------
    np.ndarray [shape=(round(duration * sr),)], float32
        Peak-normalised to 0.5 so that clips never clip.

    Examples
    --------
    >>> clip = generate_clip(0, anomaly="imbalance", duration=1.0)
    >>> clip.shape, clip.dtype, float(abs(clip).max())
    ((16000,), dtype('float32'), 0.5)
    """
    check_clip_params(sr=sr, duration=duration, severity=severity)
    if anomaly is not None and anomaly not in ANOMALY_TYPES:
        raise ParameterError(f"anomaly must be None or one of {ANOMALY_TYPES}, got {anomaly!r}")
    model = fan_model(machine_id, seed=seed)
    code = -1 if anomaly is None else ANOMALY_TYPES.index(anomaly)
    rng = np.random.default_rng([seed, machine_id, clip_index, code + 1, 104729])
    n = round(duration * sr)
    s = severity if anomaly is not None else 0.0
    machine = machine_sound(model, anomaly, s, rng, n, sr)
    background = factory_background(rng, n, sr)
    signal = mix_at_snr(machine, background, snr)
    peak = float(np.max(np.abs(signal))) + 1e-12
    return np.asarray(signal * (0.5 / peak), dtype=np.float32)


#: Speed of sound in m/s.
SPEED_OF_SOUND = 343.0


def mic_positions(n_mics: int, *, radius: float = 0.05) -> _F64:
    """``(n_mics, 2)`` positions in metres of a circular array (microphone 0 on the x axis).

    Examples
    --------
    >>> mic_positions(4, radius=0.1).round(3).tolist()
    [[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [-0.0, -0.1]]
    """
    if not isinstance(n_mics, int) or n_mics < 1:
        raise ParameterError(f"n_mics must be a positive int, got {n_mics!r}")
    if not radius >= 0:
        raise ParameterError(f"radius must be >= 0 metres, got {radius!r}")
    angles = 2 * np.pi * np.arange(n_mics) / n_mics
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


@overload
def generate_multichannel_clip(
    machine_id: int = 0,
    *,
    n_mics: int = 8,
    anomaly: str | None = None,
    severity: float = 0.5,
    snr: float = 6.0,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    clip_index: int = 0,
    radius: float = 0.05,
    uncorrelated: float = 0.5,
    components: Literal[False] = ...,
) -> FloatArray: ...


@overload
def generate_multichannel_clip(
    machine_id: int = 0,
    *,
    n_mics: int = 8,
    anomaly: str | None = None,
    severity: float = 0.5,
    snr: float = 6.0,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    clip_index: int = 0,
    radius: float = 0.05,
    uncorrelated: float = 0.5,
    components: Literal[True],
) -> tuple[FloatArray, FloatArray]: ...


def generate_multichannel_clip(
    machine_id: int = 0,
    *,
    n_mics: int = 8,
    anomaly: str | None = None,
    severity: float = 0.5,
    snr: float = 6.0,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    clip_index: int = 0,
    radius: float = 0.05,
    uncorrelated: float = 0.5,
    components: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray]:
    """Synthesise one clip as heard by a circular microphone array.

    The fan's sound is exactly the one :func:`generate_clip` makes for the
    same arguments; it reaches each microphone from a point source (its
    position fixed per machine id, 0.3-0.6 m from the array centre) with
    that path's delay and 1/r level. The background is diffuse: a share
    ``1 - uncorrelated`` of its power comes from 12 far-field plane waves of
    factory noise from random directions, the rest is independent per
    microphone. ``snr`` is the machine-to-background power ratio averaged
    over the microphones.

    Parameters
    ----------
    n_mics : int >= 1, default 8
    radius : float >= 0, default 0.05
        Array radius in metres.
    uncorrelated : float in [0, 1], default 0.5
        Share of the background power that is independent between microphones.
    components : bool, default False
        Return ``(machine, background)``, each ``(n_mics, n_samples)`` float32,
        already scaled so that ``machine + background`` is the clip (for
        measuring the SNR an array method achieves).
    machine_id, anomaly, severity, snr, duration, sr, seed, clip_index
        As in :func:`generate_clip`.

    Returns
    -------
    np.ndarray [shape=(n_mics, round(duration * sr))], float32
        Peak-normalised to 0.5 over all channels (or the two components).

    Examples
    --------
    >>> clip = generate_multichannel_clip(0, n_mics=4, duration=0.5)
    >>> clip.shape, clip.dtype, float(abs(clip).max())
    ((4, 8000), dtype('float32'), 0.5)
    """
    check_clip_params(sr=sr, duration=duration, severity=severity)
    if anomaly is not None and anomaly not in ANOMALY_TYPES:
        raise ParameterError(f"anomaly must be None or one of {ANOMALY_TYPES}, got {anomaly!r}")
    if not 0.0 <= uncorrelated <= 1.0:
        raise ParameterError(f"uncorrelated must be in [0, 1], got {uncorrelated!r}")
    mics = mic_positions(n_mics, radius=radius)
    model = fan_model(machine_id, seed=seed)
    code = -1 if anomaly is None else ANOMALY_TYPES.index(anomaly)
    rng = np.random.default_rng([seed, machine_id, clip_index, code + 1, 104729])
    n = round(duration * sr)
    s = severity if anomaly is not None else 0.0
    dry = machine_sound(model, anomaly, s, rng, n, sr)

    place = np.random.default_rng([seed, machine_id, 6151])  # where this machine stands: fixed per id
    angle, distance = place.uniform(0, 2 * np.pi), place.uniform(0.3, 0.6)
    source = distance * np.array([np.cos(angle), np.sin(angle)])
    paths = np.linalg.norm(mics - source, axis=1)
    machine = _delayed(dry, (paths - paths.min()) / SPEED_OF_SOUND * sr) * (paths.min() / paths)[:, None]

    space = np.random.default_rng([seed, machine_id, clip_index, code + 1, 130363])
    diffuse = np.zeros((n_mics, n))
    for _ in range(12):
        theta = space.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(theta), np.sin(theta)])
        wave = factory_background(space, n, sr)
        diffuse += _delayed(wave, -(mics @ direction) / SPEED_OF_SOUND * sr)
    diffuse /= np.sqrt(np.mean(diffuse**2)) + 1e-12
    independent = np.stack([factory_background(space, n, sr) for _ in range(n_mics)])
    independent /= np.sqrt(np.mean(independent**2)) + 1e-12
    background = np.sqrt(1.0 - uncorrelated) * diffuse + np.sqrt(uncorrelated) * independent
    scale = np.sqrt(np.mean(machine**2) / (np.mean(background**2) * 10 ** (snr / 10) + 1e-20))
    background *= scale
    peak = float(np.max(np.abs(machine + background))) + 1e-12
    if components:
        return (
            np.asarray(machine * (0.5 / peak), dtype=np.float32),
            np.asarray(background * (0.5 / peak), dtype=np.float32),
        )
    return np.asarray((machine + background) * (0.5 / peak), dtype=np.float32)


def _delayed(signal: _F64, delays: _F64) -> _F64:
    """``signal`` delayed by each of ``delays`` (in samples, fractional; circular): ``(len(delays), n)``."""
    n = len(signal)
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(n)
    shifts = np.exp(-2j * np.pi * np.outer(np.asarray(delays, dtype=np.float64), freqs))
    return np.asarray(np.fft.irfft(spectrum[None, :] * shifts, n, axis=1))


def iter_clips(
    *,
    machine: str = "fan",
    ids: Sequence[int] = (0, 2, 4, 6),
    n_normal: int = 50,
    n_abnormal: int = 15,
    snr: float = 6.0,
    anomaly_types: Sequence[str] = _DEFAULT_ANOMALIES,
    severity: float = 0.5,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    n_mics: int = 1,
) -> Iterator[tuple[ClipRecord, FloatArray]]:
    """Yield ``(record, signal)`` for every clip of a synthetic data set, without writing files.

    Records carry relative MIMII-layout paths. Abnormal clips cycle through
    ``anomaly_types``. Parameters as in :func:`write_dataset`; with
    ``n_mics > 1`` each signal has shape ``(n_mics, n_samples)``.

    Examples
    --------
    >>> record, signal = next(iter_clips(ids=[2], n_normal=1, n_abnormal=0, duration=0.5))
    >>> record.path, signal.shape
    ('6_dB_fan/fan/id_02/normal/00000000.wav', (8000,))

    """
    check_clip_params(sr=sr, duration=duration, severity=severity)
    for name, count in (("n_normal", n_normal), ("n_abnormal", n_abnormal)):
        if not isinstance(count, int) or count < 0:
            raise ParameterError(f"{name} must be a non-negative int, got {count!r}")
    if not isinstance(n_mics, int) or isinstance(n_mics, bool) or n_mics < 1:
        raise ParameterError(f"n_mics must be a positive int, got {n_mics!r}")
    bad = [a for a in anomaly_types if a not in ANOMALY_TYPES]
    if bad or not anomaly_types:
        raise ParameterError(f"anomaly_types must be a non-empty subset of {ANOMALY_TYPES}, got {list(anomaly_types)}")
    for machine_id in ids:
        for label, count in (("normal", n_normal), ("abnormal", n_abnormal)):
            for index in range(count):
                anomaly = None if label == "normal" else anomaly_types[index % len(anomaly_types)]
                path = f"{snr_folder(snr, machine)}/{machine}/id_{machine_id:02d}/{label}/{index:08d}.wav"
                record = ClipRecord(path, machine, machine_id, float(snr), label)  # type: ignore[arg-type]
                if n_mics == 1:
                    signal = generate_clip(
                        machine_id,
                        anomaly=anomaly,
                        severity=severity,
                        snr=snr,
                        duration=duration,
                        sr=sr,
                        seed=seed,
                        clip_index=index,
                    )
                else:
                    signal = generate_multichannel_clip(
                        machine_id,
                        n_mics=n_mics,
                        anomaly=anomaly,
                        severity=severity,
                        snr=snr,
                        duration=duration,
                        sr=sr,
                        seed=seed,
                        clip_index=index,
                    )
                yield record, signal


def write_dataset(
    root: PathLike,
    *,
    machine: str = "fan",
    ids: Sequence[int] = (0, 2, 4, 6),
    n_normal: int = 50,
    n_abnormal: int = 15,
    snr: float = 6.0,
    anomaly_types: Sequence[str] = _DEFAULT_ANOMALIES,
    severity: float = 0.5,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    progress: bool = False,
    n_mics: int = 1,
) -> Path:
    """Write a synthetic data set as 16-bit mono WAV files in the MIMII layout.

    Parameters
    ----------
    root : path
        Output folder; files go to ``root/<snr>_dB_<machine>/<machine>/id_NN/<label>/NNNNNNNN.wav``.
    machine : str, default "fan"
    ids : sequence of int, default (0, 2, 4, 6)
        Machine ids, as in MIMII's fan set.
    n_normal, n_abnormal : int >= 0
        Clips per id and label.
    snr : float, default 6
        Machine-to-background power ratio in dB.
    anomaly_types : sequence of str
        Faults to simulate, cycled over abnormal clips (see :data:`ANOMALY_TYPES`).
    severity : float in (0, 1], default 0.5
        Fault strength: lower is harder.
    duration : float > 0, default 10
        Seconds per clip.
    sr : int > 0, default 16000
        Sample rate in Hz.
    seed : int, default 0
    progress : bool, default False
    n_mics : int >= 1, default 1
        Microphones: 1 writes mono files (from :func:`generate_clip`), more
        writes multichannel files from :func:`generate_multichannel_clip`.

    Returns
    -------
    pathlib.Path
        ``root``, ready for :class:`soundanomaly.datasets.MIMII`.

    Examples
    --------
    >>> root = write_dataset("fans", ids=[0], n_normal=2, n_abnormal=1, duration=1.0, snr=0)
    >>> sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))[0]
    '0_dB_fan/fan/id_00/abnormal/00000000.wav'

    """
    root = Path(root)
    clips = iter_clips(
        machine=machine,
        ids=ids,
        n_normal=n_normal,
        n_abnormal=n_abnormal,
        snr=snr,
        anomaly_types=anomaly_types,
        severity=severity,
        duration=duration,
        sr=sr,
        seed=seed,
        n_mics=n_mics,
    )
    return write_clips(root, clips, sr=sr, total=len(ids) * (n_normal + n_abnormal), progress=progress)


def write_clips(
    root: Path, clips: Iterable[tuple[ClipRecord, FloatArray]], *, sr: int, total: int, progress: bool
) -> Path:
    """Write each ``(record, signal)`` as a 16-bit WAV at ``root / record.path``, each file atomically.

    ``signal`` is ``(n,)`` or ``(n_mics, n)``; ``total`` sizes the progress bar.

    Examples
    --------
    >>> from soundanomaly.datasets.clips import ClipRecord
    >>> record = ClipRecord("fan/id_00/normal/00000000.wav", "fan", 0, 6.0, "normal")
    >>> root = write_clips(Path("out"), [(record, np.zeros(160, np.float32))], sr=16000, total=1, progress=False)
    >>> sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    ['fan/id_00/normal/00000000.wav']
    """
    for record, signal in _progress(clips, total=total, desc="synthesising", enabled=progress):
        target = root / record.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".wav.tmp")
        os.close(fd)
        sf.write(tmp, signal.T, sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, target)
    return root
