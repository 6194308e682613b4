"""Reading a long recording block by block under the same rules as :func:`soundanomaly.audio.load`.

``scan`` and ``monitor`` read recordings of any length, so they cannot take
the whole file into memory as :func:`~soundanomaly.audio.load` does. They read
through :func:`read_blocks`, which refuses what ``load`` refuses, before or
while reading:

* anything but a regular file (a folder, a FIFO with or without a writer, a
  device): checked with ``stat`` before the file is opened, so nothing hangs;
* a WAV file whose data chunk is shorter than its header says (truncated);
* an implausible sample rate, or one below the model's (see
  :func:`soundanomaly.audio.check_rate`);
* NaN, infinite or absurdly large samples (see :func:`soundanomaly.audio.check_samples`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import numpy as np

from soundanomaly.audio import check_rate, check_regular_mode, check_samples
from soundanomaly.exceptions import AudioError
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["check_recording", "read_blocks"]

_MAX_CHUNKS = 4096  # chunk headers walked before the data chunk (a crafted file cannot make us loop long)


def check_recording(path: PathLike) -> None:
    """Refuse a recording that is not a regular file, or a WAV file cut short.

    Raises
    ------
    AudioError
        Naming the file.

    Examples
    --------
    >>> import os
    >>> os.mkfifo("live.wav")
    >>> check_recording("live.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: live.wav: not a regular file (a FIFO); give an audio file
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError as exc:
        raise AudioError(name, "file not found") from exc
    except OSError as exc:
        raise AudioError(name, f"cannot open ({exc.strerror or exc})") from exc
    check_regular_mode(name, info.st_mode)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise AudioError(name, f"cannot open ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped after the stat
            raise AudioError(name, "not a regular file; give an audio file")
        _check_wav_complete(name, handle, info.st_size)


def _check_wav_complete(name: str, handle: object, size_all: int) -> None:
    """Walk a RIFF/WAVE file's chunk headers to its data chunk; refuse one shorter than declared."""
    read = handle.read  # type: ignore[attr-defined]
    seek = handle.seek  # type: ignore[attr-defined]
    head = read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return  # not a plain WAV: libsndfile judges it
    offset = 12
    for _ in range(_MAX_CHUNKS):
        seek(offset)
        header = read(8)
        if len(header) < 8:
            raise AudioError(name, "truncated WAV file: no data chunk")
        size = int.from_bytes(header[4:8], "little")
        if header[:4] == b"data":
            available = size_all - offset - 8
            if size != 0xFFFFFFFF and available < size:
                raise AudioError(
                    name, f"truncated WAV file: header declares {size} data bytes, only {available} present"
                )
            return
        offset += 8 + size + (size & 1)
    raise AudioError(name, f"not a readable audio file (more than {_MAX_CHUNKS} chunks before the data)")


def read_blocks(
    path: PathLike, *, block_seconds: float, channel: int = 0, target_sr: int | None = None
) -> Iterator[tuple[FloatArray, int]]:
    """Yield ``(mono float32 block, sample rate)`` of a recording, checked as :func:`soundanomaly.audio.load` checks.

    Parameters
    ----------
    path : path
        Any regular file soundfile reads (WAV, FLAC, GSM 6.10 WAV, ...).
    block_seconds : float > 0
        Length of each block (the last one may be shorter).
    channel : int, default 0
        Channel of a multi-channel file.
    target_sr : int or None, default None
        The rate the model's features use: a file recorded below it is refused
        (:func:`soundanomaly.audio.check_rate`); blocks keep the file's own rate.

    Raises
    ------
    AudioError
        Naming the file, as :func:`check_recording` and the sample checks.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> sf.write("tone.wav", np.zeros(16000, np.float32), 16000)
    >>> [(len(block), sr) for block, sr in read_blocks("tone.wav", block_seconds=0.5)]
    [(8000, 16000), (8000, 16000)]
    """
    import soundfile as sf

    name = os.fspath(path)
    check_recording(name)
    try:
        handle = sf.SoundFile(name)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(name, f"not a readable audio file ({getattr(exc, 'error_string', None) or exc})") from exc
    with handle:
        sr = int(handle.samplerate)
        check_rate(name, sr, target_sr=target_sr)
        if not -handle.channels <= channel < handle.channels:
            raise AudioError(name, f"channel {channel} out of range: the file has {handle.channels} channel(s)")
        size = max(1, round(block_seconds * sr))
        sent = 0
        while True:
            try:
                block = handle.read(size, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(name, f"read failed ({exc})") from exc
            if len(block) == 0:
                break
            mono = np.ascontiguousarray(block[:, channel])
            check_samples(name, mono)
            sent += len(mono)
            yield mono, sr
        if sent == 0:
            raise AudioError(name, "audio has zero length (no samples)")
