"""Mutation fuzz test of the WAV decoders: the fast PCM-16 path must agree with libsndfile.

Seeded random mutations of real-looking files (header fields, chunk sizes and
ids, duplicated/moved chunks, truncation, trailing bytes). For each one:

* :func:`soundanomaly.audio.decode` and the int16 fast path never raise anything
  but a library error (:class:`SoundAnomalyError`);
* whatever the library returns, libsndfile accepts too, with identical samples
  and rate;
* whatever libsndfile accepts, the library accepts with identical samples, unless
  it refuses on purpose (a truncated data chunk, an implausible sample rate,
  no samples, NaN/inf or absurd samples): the stricter checks are listed below.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.audio import _decode_samples, decode
from soundanomaly.exceptions import AudioError, SoundAnomalyError

#: Reasons the library refuses a file that libsndfile would read (on purpose, stricter).
DELIBERATE = ("truncated WAV file", "implausible sample rate", "zero length", "NaN or infinite", "absurd magnitude")

N_MUTATIONS = 300


def _pcm16(n_frames: int, n_channels: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(-32768, 32767, size=(n_frames, n_channels), dtype=np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, data, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """``(offset, id, size)`` of the top-level chunks of a well-formed RIFF file."""
    out, offset = [], 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        out.append((offset, chunk_id, size))
        offset += 8 + size + (size & 1)
    return out


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    chunks = _chunks(data)
    buf = bytearray(data)
    kind = int(rng.integers(9))
    if kind == 0:  # a 32-bit header field gets an interesting value
        pos = int(rng.integers(4, min(len(buf), 80) - 4))
        old = struct.unpack("<I", buf[pos : pos + 4])[0]
        value = int(rng.choice([0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, old + 1, max(old - 1, 0), old * 2, 8000, 44100]))
        buf[pos : pos + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    elif kind == 1:  # a 16-bit field (tag, channels, block align, bits)
        pos = int(rng.integers(20, min(len(buf), 80) - 2))
        buf[pos : pos + 2] = struct.pack("<H", int(rng.choice([0, 1, 2, 3, 8, 16, 24, 0xFFFE, 0xFFFF])))
    elif kind == 2:  # a random byte of the header
        pos = int(rng.integers(0, min(len(buf), 80)))
        buf[pos] = int(rng.integers(256))
    elif kind == 3:  # a chunk duplicated (two fmt or two data chunks), here or at the end
        offset, _, size = chunks[int(rng.integers(len(chunks)))]
        piece = bytes(buf[offset : offset + 8 + size + (size & 1)])
        where = len(buf) if rng.random() < 0.5 else offset
        buf[where:where] = piece
        buf[4:8] = struct.pack("<I", len(buf) - 8)
    elif kind == 4:  # a chunk's size changed
        offset, _, size = chunks[int(rng.integers(len(chunks)))]
        new = int(rng.choice([0, 1, 15, 16, 17, 18, size - 2, size + 2, size * 2, 0xFFFFFFFF]))
        buf[offset + 4 : offset + 8] = struct.pack("<I", new & 0xFFFFFFFF)
    elif kind == 5:  # a chunk id changed
        offset, _, _ = chunks[int(rng.integers(len(chunks)))]
        buf[offset : offset + 4] = [b"fmt ", b"data", b"LIST", b"fact", b"junk", b"\0\0\0\0"][int(rng.integers(6))]
    elif kind == 6:  # truncated anywhere
        del buf[int(rng.integers(0, len(buf))) :]
    elif kind == 7:  # trailing bytes (a partial chunk header, or garbage)
        buf += bytes(rng.integers(0, 256, size=int(rng.integers(1, 12)), dtype=np.uint8))
    else:  # a fmt chunk cut short (size < 16) with the rest of the file kept
        offset = next(o for o, cid, _ in chunks if cid == b"fmt ")
        buf[offset + 4 : offset + 8] = struct.pack("<I", int(rng.integers(0, 16)))
    return bytes(buf)


def _oracle(data: bytes) -> tuple[np.ndarray, int] | None:
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:  # any libsndfile refusal
        return None
    return samples, int(rate)


def _check_one(data: bytes, label: str) -> str:
    """Compare the library with libsndfile on one file; return what happened."""
    expected = _oracle(data)
    error: SoundAnomalyError | None = None
    try:
        got, rate = decode(data, name=label, channel=None)
    except SoundAnomalyError as exc:
        error = exc
        outcome = "refused"
    else:
        assert expected is not None, f"{label}: libsndfile rejects it, the library decoded {got.shape} at {rate} Hz"
        np.testing.assert_array_equal(got, expected[0].T, err_msg=label)
        assert rate == expected[1], label
        outcome = "decoded"
    if error is not None and expected is not None and len(expected[0]):
        assert isinstance(error, AudioError), f"{label}: {error!r}"
        assert any(reason in str(error) for reason in DELIBERATE), f"{label}: libsndfile reads it, we say {error}"
    try:  # the int16 fast path used by feature extraction agrees with decode
        samples, gain, rate0 = _decode_samples(data, name=label, channel=0)
    except SoundAnomalyError:
        assert outcome == "refused", f"{label}: decode accepts it, the fast path refuses"
    else:
        assert outcome == "decoded", f"{label}: decode refuses it, the fast path accepts"
        np.testing.assert_array_equal(np.multiply(samples, gain, dtype=np.float32), got[0], err_msg=label)
        assert rate0 == rate
    return outcome


BASES: dict[str, Callable[[], bytes]] = {
    "8ch": lambda: _pcm16(401, 8, seed=0),
    "mono": lambda: _pcm16(333, 1, seed=1),
}


@pytest.mark.parametrize("base", sorted(BASES))
def test_mutations_agree_with_libsndfile(base: str) -> None:
    data = BASES[base]()
    assert _check_one(data, base) == "decoded"
    rng = np.random.default_rng(20261124)
    outcomes = [_check_one(_mutate(data, rng), f"{base}#{i}") for i in range(N_MUTATIONS)]
    assert outcomes.count("decoded") > 10 and outcomes.count("refused") > 10  # the fuzz reaches both sides


def test_mutations_of_real_clips(mimii_root: Path) -> None:
    rng = np.random.default_rng(7)
    for path in sorted(mimii_root.rglob("*.wav"))[:3]:
        data = path.read_bytes()
        assert _check_one(data, path.name) == "decoded"
        for i in range(20):
            _check_one(_mutate(data, rng), f"{path.name}#{i}")


@pytest.mark.parametrize(
    ("name", "edit", "problem"),
    [
        ("two fmt chunks", "dup_fmt", None),
        ("two data chunks", "dup_data", None),
        ("fmt cut short", "short_fmt", None),
        ("sample rate 0", "rate0", "implausible sample rate|not a readable"),
    ],
)
def test_named_cases(name: str, edit: str, problem: str | None) -> None:
    data = bytearray(_pcm16(200, 2, seed=3))
    chunks = {cid: (offset, size) for offset, cid, size in _chunks(bytes(data))}
    fmt_at, fmt_size = chunks[b"fmt "]
    data_at, data_size = chunks[b"data"]
    if edit == "dup_fmt":  # a second fmt chunk (mono) before the data: the old fast path read stereo as mono
        mono = bytearray(data[fmt_at : fmt_at + 8 + fmt_size])
        mono[10:12] = struct.pack("<H", 1)
        mono[20:22] = struct.pack("<H", 2)
        data[data_at:data_at] = mono
    elif edit == "dup_data":  # the old fast path read only the first data chunk
        data += data[data_at : data_at + 8 + data_size]
    elif edit == "short_fmt":  # the old fast path raised struct.error
        del data[fmt_at + 8 + 10 :]
    else:
        data[fmt_at + 12 : fmt_at + 16] = struct.pack("<I", 0)
    data[4:8] = struct.pack("<I", len(data) - 8)
    outcome = _check_one(bytes(data), name)
    if problem is not None:
        assert outcome == "refused"
        with pytest.raises(AudioError, match=problem):
            decode(bytes(data), name=name)
