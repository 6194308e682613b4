"""Synthetic fans under domain shift, in the DCASE 2023 Task 2 layout.

The same physical fans as :mod:`soundanomaly.datasets.synthetic` (one fan model
per *section*), recorded under conditions that change between a **source**
domain (plenty of training clips) and a **target** domain (a handful), as in
DCASE 2021-2024 Task 2:

* ``"operating_point"``: the target runs 10-20 % faster or slower (every tone
  moves) under a heavier load (more flow noise, louder hum);
* ``"background"``: the target's background is another kind of noise (HVAC
  rumble or a workshop's tool whine and hammering instead of factory noise) at a
  3-6 dB lower signal-to-noise ratio;
* ``"microphone"``: the target microphone has another gain (4-8 dB), stands
  1.5-2.5 times farther away (lower level against the background, duller
  highs) and has another frequency response (a tilt of 1-2 dB per octave).

Each section gets one kind of shift (cycled over ``shifts``); the source domain
itself holds three nearby conditions (speeds within ±3 %), so that a detector
must generalise a little even within it. **Day-to-day drift**: ``day=2`` writes a
second test session of the same machines a "day" later (speed +3 %, load +10 %,
background 2 dB louder, microphone gain -2 dB and a +0.5 dB/octave tilt), for
checking that thresholds survive a new recording session.

Files (``<root>/<machine>/<train|test>/``)::

    section_00_source_train_normal_0000_spd_1331_load_100_bg_factory_snr_6_mic_g0_d100_t0.wav
    section_00_target_test_anomaly_0007_spd_1530_load_140_bg_factory_snr_6_mic_g0_d100_t0.wav

read by :func:`soundanomaly.datasets.open_dataset` and
:class:`soundanomaly.datasets.DCASE` (section, domain, label, attributes).

Seeds: everything is deterministic for ``seed``. :data:`EVALUATION_SEED` is the
frozen seed the shift benchmark reports on; tune on :data:`DEVELOPMENT_SEED`
(or any other) and never on it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.signal

from soundanomaly.datasets.mimii import ClipRecord
from soundanomaly.datasets.synthetic import ANOMALY_TYPES, factory_background, fan_model, machine_sound, write_clips
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = [
    "BACKGROUNDS",
    "DEVELOPMENT_SEED",
    "EVALUATION_SEED",
    "SHIFT_KINDS",
    "Condition",
    "domain_conditions",
    "generate_shift_clip",
    "iter_shift_clips",
    "write_shift_dataset",
]

#: The frozen seed the shift benchmark reports on. Never tune against it.
EVALUATION_SEED: Final = 2023
#: The seed to develop and tune on.
DEVELOPMENT_SEED: Final = 0
#: The kinds of domain shift, one per section (cycled).
SHIFT_KINDS: tuple[str, ...] = ("operating_point", "background", "microphone")
#: Background noise types.
BACKGROUNDS: tuple[str, ...] = ("factory", "hvac", "workshop")
_DEFAULT_ANOMALIES: tuple[str, ...] = ("imbalance", "voltage_change", "clogging")
#: RMS of the fan's sound at the reference distance and 0 dB microphone gain.
_OUTPUT_RMS = 0.05
_F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Condition:
    """How a clip was recorded: the machine's operating point, the background and the microphone.

    Attributes
    ----------
    speed : float > 0
        Shaft speed as a multiple of the fan model's nominal rpm.
    load : float > 0
        Load: multiplies the flow noise (and the hum by its square root).
    background : {"factory", "hvac", "workshop"}
    snr : float
        Machine-to-background power ratio in dB at the reference distance.
    gain_db : float
        Microphone gain in dB.
    distance : float >= 1
        Microphone distance as a multiple of the reference: the machine's level
        falls as ``1 / distance`` and its highs are damped (air absorption).
    tilt_db : float
        Microphone response tilt in dB per octave around 1 kHz.

    Examples
    --------
    >>> Condition(speed=1.15, load=1.4).attributes(rpm=1200.0)
    'spd_1380_load_140_bg_factory_snr_6_mic_g0_d100_t0'
    """

    speed: float = 1.0
    load: float = 1.0
    background: str = "factory"
    snr: float = 6.0
    gain_db: float = 0.0
    distance: float = 1.0
    tilt_db: float = 0.0

    def attributes(self, *, rpm: float) -> str:
        """The DCASE-style attribute string of this condition for a fan of nominal ``rpm``."""
        return (
            f"spd_{round(rpm * self.speed)}_load_{round(100 * self.load)}_bg_{self.background}"
            f"_snr_{self.snr:g}_mic_g{self.gain_db:g}_d{round(100 * self.distance)}_t{self.tilt_db:g}"
        )

    def next_day(self, days: int = 1) -> Condition:
        """The same condition ``days`` days later: slow drift of speed, load, background level and microphone.

        Examples
        --------
        >>> Condition().next_day().attributes(rpm=1000.0)
        'spd_1030_load_110_bg_factory_snr_4_mic_g-2_d100_t0.5'
        """
        return replace(
            self,
            speed=round(self.speed * 1.03**days, 4),
            load=round(self.load * 1.1**days, 4),
            snr=self.snr - 2.0 * days,
            gain_db=self.gain_db - 2.0 * days,
            tilt_db=self.tilt_db + 0.5 * days,
        )


def domain_conditions(section: int, shift: str, *, snr: float = 6.0, seed: int = 0) -> dict[str, tuple[Condition, ...]]:
    """The recording conditions of a section's source and target domains.

    Parameters
    ----------
    section : int >= 0
    shift : {"operating_point", "background", "microphone"}
        What differs between the domains.
    snr : float, default 6
        The source domain's machine-to-background ratio in dB.
    seed : int, default 0

    Returns
    -------
    dict
        ``{"source": (three conditions), "target": (one condition)}``; clips cycle over them.

    Examples
    --------
    >>> conditions = domain_conditions(0, "operating_point")
    >>> [round(c.speed, 2) for c in conditions["source"]]
    [0.97, 1.0, 1.03]
    >>> 0.10 <= abs(conditions["target"][0].speed - 1) <= 0.20
    True
    """
    if shift not in SHIFT_KINDS:
        raise ParameterError(f"shift must be one of {SHIFT_KINDS}, got {shift!r}")
    base = Condition(snr=float(snr))
    source = tuple(replace(base, speed=s) for s in (0.97, 1.0, 1.03))
    rng = np.random.default_rng([seed, section, 52711])
    sign = float(rng.choice([-1.0, 1.0]))
    if shift == "operating_point":
        target = replace(
            base, speed=round(1.0 + sign * rng.uniform(0.10, 0.20), 3), load=round(rng.uniform(1.3, 1.6), 2)
        )
    elif shift == "background":
        target = replace(base, background=str(rng.choice(BACKGROUNDS[1:])), snr=round(snr - rng.uniform(3.0, 6.0), 1))
    else:
        target = replace(
            base,
            gain_db=round(sign * rng.uniform(4.0, 8.0), 1),
            distance=round(rng.uniform(1.5, 2.5), 2),
            tilt_db=round(-sign * rng.uniform(1.0, 2.0), 1),
        )
    return {"source": source, "target": (target,)}


def generate_shift_clip(
    section: int = 0,
    condition: Condition | None = None,
    *,
    anomaly: str | None = None,
    severity: float = 0.5,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    stream: int = 0,
    clip_index: int = 0,
) -> FloatArray:
    """Synthesise one clip of a section's fan recorded under ``condition``.

    Parameters
    ----------
    section : int >= 0
        The fan model (as ``machine_id`` in :func:`soundanomaly.datasets.fan_physics.fan_model`).
    condition : Condition, optional
        Default: ``Condition()`` (nominal speed, factory background at 6 dB).
    anomaly : {None, "imbalance", "voltage_change", "clogging", "bearing_wear"}
    severity : float in (0, 1], default 0.5
    duration : float > 0, default 10
        Seconds.
    sr : int >= 1000, default 16000
        Hz.
    seed, stream, clip_index : int
        Fix the random draw (``stream`` separates the training, test and day sessions).

    Returns
    -------
    np.ndarray [shape=(round(duration * sr),)], float32
        Not peak-normalised: the microphone's gain and distance show in the level
        (the fan's RMS is 0.05 at the reference distance and 0 dB gain).

    Examples
    --------
    >>> clip = generate_shift_clip(0, Condition(gain_db=6.0), duration=0.5)
    >>> clip.shape, clip.dtype, bool(abs(clip).max() < 1.0)
    ((8000,), dtype('float32'), True)
    """
    condition = Condition() if condition is None else condition
    _check_condition(condition)
    if not isinstance(sr, int) or sr < 1000:
        raise ParameterError(f"sr must be an int >= 1000 Hz, got {sr!r}")
    if not duration > 0:
        raise ParameterError(f"duration must be > 0 seconds, got {duration!r}")
    if not 0.0 < severity <= 1.0:
        raise ParameterError(f"severity must be in (0, 1], got {severity!r}")
    if anomaly is not None and anomaly not in ANOMALY_TYPES:
        raise ParameterError(f"anomaly must be None or one of {ANOMALY_TYPES}, got {anomaly!r}")
    nominal = fan_model(section, seed=seed)
    model = replace(
        nominal,
        rpm=nominal.rpm * condition.speed,
        noise_level=nominal.noise_level * condition.load,
        hum_level=nominal.hum_level * np.sqrt(condition.load),
    )
    code = 0 if anomaly is None else ANOMALY_TYPES.index(anomaly) + 1
    rng = np.random.default_rng([seed, section, stream, clip_index, code, 7127])
    n = round(duration * sr)
    machine = machine_sound(model, anomaly, severity if anomaly is not None else 0.0, rng, n, sr)
    reference = _reference_rms(section, seed)
    background = _background(condition.background, rng, n, sr)
    background *= reference / (np.sqrt(np.mean(background**2)) + 1e-12) / 10 ** (condition.snr / 20)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    at_mic = np.fft.rfft(machine) / condition.distance
    at_mic *= np.exp(-0.05 * (condition.distance - 1.0) * freqs / 1000.0)  # air absorption of the highs
    mixed = at_mic + np.fft.rfft(background)
    tilt = 10 ** (condition.tilt_db * np.log2(np.maximum(freqs, 50.0) / 1000.0) / 20)
    signal = np.fft.irfft(mixed * tilt, n) * (_OUTPUT_RMS / reference) * 10 ** (condition.gain_db / 20)
    return np.asarray(np.clip(signal, -0.999, 0.999), dtype=np.float32)


def iter_shift_clips(
    *,
    machine: str = "fan",
    sections: Sequence[int] = (0, 1, 2),
    shifts: Sequence[str] = SHIFT_KINDS,
    n_source: int = 990,
    n_target: int = 10,
    n_test: int = 50,
    snr: float = 6.0,
    anomaly_types: Sequence[str] = _DEFAULT_ANOMALIES,
    severity: float = 0.5,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    day: int = 1,
) -> Iterator[tuple[ClipRecord, FloatArray]]:
    """Yield ``(record, signal)`` for every clip of a shift data set, without writing files.

    Parameters as in :func:`write_shift_dataset`; records carry relative paths
    (``<machine>/<split>/<name>.wav``).

    Examples
    --------
    >>> clips = iter_shift_clips(sections=[0], n_source=1, n_target=1, n_test=1, duration=0.25)
    >>> [(r.domain, r.split, r.label) for r, _ in clips][:3]
    [('source', 'train', 'normal'), ('target', 'train', 'normal'), ('source', 'test', 'normal')]
    """
    counts = {"n_source": n_source, "n_target": n_target, "n_test": n_test, "day": day}
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < (1 if name == "day" else 0):
            raise ParameterError(
                f"{name} must be a {'positive' if name == 'day' else 'non-negative'} int, got {count!r}"
            )
    if not sections or len(set(sections)) != len(sections) or any(not isinstance(s, int) or s < 0 for s in sections):
        raise ParameterError(f"sections must be distinct non-negative ints, got {list(sections)}")
    if not shifts or any(s not in SHIFT_KINDS for s in shifts):
        raise ParameterError(f"shifts must be a non-empty sequence of {SHIFT_KINDS}, got {list(shifts)}")
    bad = [a for a in anomaly_types if a not in ANOMALY_TYPES]
    if bad or not anomaly_types:
        raise ParameterError(f"anomaly_types must be a non-empty subset of {ANOMALY_TYPES}, got {list(anomaly_types)}")
    for position, section in enumerate(sections):
        conditions = domain_conditions(section, shifts[position % len(shifts)], snr=snr, seed=seed)
        if day > 1:
            conditions = {domain: tuple(c.next_day(day - 1) for c in cs) for domain, cs in conditions.items()}
        plan: list[tuple[str, str, str, int]] = []
        if day == 1:
            plan += [("source", "train", "normal", n_source), ("target", "train", "normal", n_target)]
        for domain in ("source", "target"):
            plan += [(domain, "test", "normal", n_test), (domain, "test", "anomaly", n_test)]
        for stream, (domain, split, label, count) in enumerate(plan):
            for index in range(count):
                condition = conditions[domain][index % len(conditions[domain])]
                anomaly = None if label == "normal" else anomaly_types[index % len(anomaly_types)]
                attributes = condition.attributes(rpm=fan_model(section, seed=seed).rpm)
                if day > 1:
                    attributes += f"_day_{day}"
                name = f"section_{section:02d}_{domain}_{split}_{label}_{index:04d}_{attributes}.wav"
                record = ClipRecord(
                    f"{machine}/{split}/{name}",
                    machine,
                    section,
                    None,
                    "normal" if label == "normal" else "abnormal",
                    domain=domain,
                    split=split,
                    attributes=attributes,
                    layout="dcase",
                )
                signal = generate_shift_clip(
                    section,
                    condition,
                    anomaly=anomaly,
                    severity=severity,
                    duration=duration,
                    sr=sr,
                    seed=seed,
                    stream=stream + 100 * (day - 1),
                    clip_index=index,
                )
                yield record, signal


def write_shift_dataset(
    root: PathLike,
    *,
    machine: str = "fan",
    sections: Sequence[int] = (0, 1, 2),
    shifts: Sequence[str] = SHIFT_KINDS,
    n_source: int = 990,
    n_target: int = 10,
    n_test: int = 50,
    snr: float = 6.0,
    anomaly_types: Sequence[str] = _DEFAULT_ANOMALIES,
    severity: float = 0.5,
    duration: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    day: int = 1,
    progress: bool = False,
) -> Path:
    """Write a synthetic domain-shift data set as 16-bit mono WAV files in the DCASE 2023 layout.

    Parameters
    ----------
    root : path
        Output folder; files go to ``root/<machine>/<train|test>/section_NN_<domain>_<split>_...wav``.
        Refused when it already holds files (write each data set into a new folder).
    machine : str, default "fan"
    sections : sequence of int, default (0, 1, 2)
        One fan model per section.
    shifts : sequence of {"operating_point", "background", "microphone"}, default all three
        The shift of each section, cycled over ``sections``.
    n_source, n_target : int >= 0, default 990 and 10
        Normal training clips per section in the source and the target domain (DCASE 2023: 990 and 10).
    n_test : int >= 0, default 50
        Test clips per section, domain and label (a balanced test set: ``4 * n_test`` per section).
    snr : float, default 6
        Source-domain machine-to-background ratio in dB.
    anomaly_types : sequence of str, default ("imbalance", "voltage_change", "clogging")
        Faults, cycled over the anomalous test clips.
    severity : float in (0, 1], default 0.5
    duration : float > 0, default 10
        Seconds per clip.
    sr : int >= 1000, default 16000
    seed : int, default 0
        Use :data:`EVALUATION_SEED` only for reported results.
    day : int >= 1, default 1
        ``2`` (or more) writes only a **new-day test session**: the same machines and
        domains after ``day - 1`` days of drift (see :meth:`Condition.next_day`), with
        ``_day_N`` at the end of the attributes. Write it into its own folder.
    progress : bool, default False

    Returns
    -------
    pathlib.Path
        ``root``, ready for :func:`soundanomaly.datasets.open_dataset`.

    Raises
    ------
    ParameterError
        On a bad parameter, or when ``root`` already holds files.

    Examples
    --------
    >>> from soundanomaly.datasets import open_dataset
    >>> root = write_shift_dataset("shift", sections=[0], n_source=4, n_target=1, n_test=1, duration=0.25)
    >>> clips = open_dataset(root)
    >>> clips, sorted({r.domain for r in clips})
    (DCASE(9 clips: 7 normal, 2 abnormal), ['source', 'target'])
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ParameterError(f"root {os.fspath(root)!r} already exists and is not an empty folder; choose a new one")
    clips = iter_shift_clips(
        machine=machine,
        sections=sections,
        shifts=shifts,
        n_source=n_source,
        n_target=n_target,
        n_test=n_test,
        snr=snr,
        anomaly_types=anomaly_types,
        severity=severity,
        duration=duration,
        sr=sr,
        seed=seed,
        day=day,
    )
    total = len(sections) * ((n_source + n_target if day == 1 else 0) + 4 * n_test)
    return write_clips(root, clips, sr=sr, total=total, progress=progress)


def _check_condition(condition: Condition) -> None:
    if not isinstance(condition, Condition):
        raise ParameterError(f"condition must be a Condition, got {type(condition).__name__}")
    if not (condition.speed > 0 and condition.load > 0 and condition.distance >= 1.0):
        raise ParameterError(f"condition needs speed > 0, load > 0 and distance >= 1, got {condition}")
    if condition.background not in BACKGROUNDS:
        raise ParameterError(f"condition.background must be one of {BACKGROUNDS}, got {condition.background!r}")
    values = (condition.snr, condition.gain_db, condition.tilt_db)
    if not all(np.isfinite(values)) or abs(condition.gain_db) > 30 or abs(condition.tilt_db) > 6:
        raise ParameterError(f"condition needs finite snr, |gain_db| <= 30 and |tilt_db| <= 6, got {condition}")


@functools.lru_cache(maxsize=64)
def _reference_rms(section: int, seed: int) -> float:
    """RMS of the section's healthy fan at the nominal operating point (fixed per section and seed)."""
    sr = 16000
    rng = np.random.default_rng([seed, section, 86243])
    sound = machine_sound(fan_model(section, seed=seed), None, 0.0, rng, sr, sr)
    return float(np.sqrt(np.mean(sound**2)))


def _background(kind: str, rng: np.random.Generator, n: int, sr: int) -> _F64:
    """Unscaled background noise of one kind (drawn from ``rng`` in a fixed order)."""
    t = np.arange(n) / sr
    if kind == "factory":
        return factory_background(rng, n, sr)
    if kind == "hvac":  # duct rumble (brown noise), a blower tone and a mains drone
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / sr)
        spectrum[1:] /= np.maximum(freqs[1:], 20.0)
        spectrum[0] = 0.0
        rumble = np.fft.irfft(spectrum, n)
        rumble /= np.std(rumble) + 1e-12
        blower = rng.uniform(180, 420)
        rumble += 0.4 * np.sin(2 * np.pi * blower * t + rng.uniform(0, 2 * np.pi))
        rumble += 0.2 * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))
        return np.asarray(rumble)
    # workshop: factory noise, an intermittent tool whine and frequent hammering
    noise = factory_background(rng, n, sr)
    whine_hz = rng.uniform(2500, 6000)
    sos = scipy.signal.butter(
        2, [whine_hz * 0.95, min(whine_hz * 1.05, 0.45 * sr)], btype="bandpass", fs=sr, output="sos"
    )
    whine = scipy.signal.sosfilt(sos, rng.standard_normal(n))
    whine /= np.std(whine) + 1e-12
    gate = (np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 2 * np.pi)) > 0.3).astype(float)
    noise += 0.8 * whine * gate
    for position in rng.integers(0, n, rng.poisson(max(1.0, 4.0 * n / sr))):
        length = min(n - position, sr // 30)
        noise[position : position + length] += (
            rng.uniform(2, 5) * rng.standard_normal(length) * np.exp(-np.arange(length) / (sr / 300))
        )
    return np.asarray(noise)
