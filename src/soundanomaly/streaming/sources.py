"""Sources of audio blocks: iterables of ``(block, sr)`` pairs."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import check_rate, check_samples
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["MAX_PCM_CHANNELS", "Block", "FolderSource", "PcmSource", "WavFileSource"]

logger = logging.getLogger("soundanomaly.monitor")
Block = tuple[npt.NDArray[Any], int]
#: Most interleaved channels a raw PCM stream may declare.
MAX_PCM_CHANNELS = 1024


class WavFileSource:
    """Read an audio file as a stream of blocks, optionally paced in real time.

    Parameters
    ----------
    path : path
        Any file soundfile reads (WAV, FLAC, ...).
    block_seconds : float > 0, default 0.1
        Length of each block.
    realtime : bool, default False
        Sleep so that blocks arrive no faster than the audio plays (a recorded
        file standing in for a microphone).
    channel : int, default 0
        Channel of a multi-channel file.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> sf.write("tone.wav", np.zeros(16000, np.float32), 16000)
    >>> blocks = list(WavFileSource("tone.wav", block_seconds=0.25))
    >>> len(blocks), blocks[0][0].shape, blocks[0][1]
    (4, (4000,), 16000)
    """

    def __init__(self, path: PathLike, *, block_seconds: float = 0.1, realtime: bool = False, channel: int = 0) -> None:
        if not block_seconds > 0:
            raise ParameterError(f"block_seconds must be > 0, got {block_seconds!r}")
        self.path = os.fspath(path)
        self.block_seconds = float(block_seconds)
        self.realtime = realtime
        self.channel = channel
        self.target_sr: int | None = None  # set by scan: a file below the model's rate is refused with its name

    def __iter__(self) -> Iterator[Block]:
        from soundanomaly.recording import read_blocks  # the rules of audio.load: regular file, complete, finite

        started, sent = time.monotonic(), 0
        for block, sr in read_blocks(self.path, block_seconds=self.block_seconds, channel=self.channel,
                                     target_sr=self.target_sr):  # fmt: skip
            if self.realtime:
                ahead = started + sent / sr - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            sent += len(block)
            yield block, sr


class FolderSource:
    """Watch a folder for new audio clips and stream them, one after the other, as one stream.

    A recorder that drops a clip every few seconds into a folder becomes a
    continuous stream. A new file is read once its size is the same at two
    polls (files already there at the start: at once); files are taken in
    name order. A clip that cannot be read is logged and skipped.

    Parameters
    ----------
    folder : path
    pattern : str, default ``"*.wav"``
    poll_seconds : float > 0, default 1
        How often to look for new files.
    existing : bool, default True
        Also stream the files already there at the start.
    idle_timeout : float or None, default None
        Stop after this many seconds without a new file (``None``: watch until interrupted).
    block_seconds : float, default 1
    channel : int, default 0

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> from pathlib import Path
    >>> Path("incoming").mkdir()
    >>> sf.write("incoming/a.wav", np.zeros(8000, np.float32), 16000)
    >>> sf.write("incoming/b.wav", np.zeros(8000, np.float32), 16000)
    >>> source = FolderSource("incoming", poll_seconds=0.01, idle_timeout=0.05)
    >>> sum(len(block) for block, sr in source), source.seen
    (16000, ['a.wav', 'b.wav'])
    """

    def __init__(
        self,
        folder: PathLike,
        *,
        pattern: str = "*.wav",
        poll_seconds: float = 1.0,
        existing: bool = True,
        idle_timeout: float | None = None,
        block_seconds: float = 1.0,
        channel: int = 0,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ParameterError(f"folder {os.fspath(folder)!r} is not a directory")
        if not poll_seconds > 0:
            raise ParameterError(f"poll_seconds must be > 0, got {poll_seconds!r}")
        self.pattern = pattern
        self.poll_seconds = float(poll_seconds)
        self.existing = existing
        self.idle_timeout = idle_timeout
        self.block_seconds = block_seconds
        self.channel = channel
        self.seen: list[str] = []

    def __iter__(self) -> Iterator[Block]:
        initial = {p.name for p in self.folder.glob(self.pattern)}
        done: set[str] = set() if self.existing else set(initial)
        sizes: dict[str, int] = {}
        first_poll, last_new = True, time.monotonic()
        while True:
            ready = []
            for path in sorted(self.folder.glob(self.pattern)):
                name = path.name
                if name in done or not path.is_file():
                    continue
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # pragma: no cover - removed between glob and stat
                    continue
                if size > 0 and ((first_poll and name in initial) or sizes.get(name) == size):
                    ready.append(path)
                else:
                    sizes[name] = size
            first_poll = False
            for path in ready:
                done.add(path.name)
                sizes.pop(path.name, None)
                self.seen.append(path.name)
                last_new = time.monotonic()
                try:
                    yield from WavFileSource(path, block_seconds=self.block_seconds, channel=self.channel)
                except AudioError as exc:  # one bad clip must not end the watch
                    logger.warning("skipping %s", exc)
                last_new = time.monotonic()  # idle time counts from the end of the last clip, not its start
            if not ready:
                if self.idle_timeout is not None and time.monotonic() - last_new > self.idle_timeout:
                    return
                time.sleep(self.poll_seconds)


_PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


class PcmSource:
    """Raw interleaved PCM from a binary stream (e.g. stdin), as ``arecord`` or ``ffmpeg`` write it.

    Parameters
    ----------
    stream : binary file-like, default ``sys.stdin.buffer``
    sr : int, default 16000
        Sample rate in Hz (raw PCM carries no header: say what the recorder sends).
    format : {"s16le", "f32le"}, default "s16le"
        ``arecord -f S16_LE`` / ``ffmpeg -f s16le``, or 32-bit float.
    channels : int, default 1
    channel : int, default 0
        Channel to monitor.
    block_seconds : float, default 0.1

    Examples
    --------
    Pipe a microphone in: ``arecord -f S16_LE -r 16000 -c 1 | soundanomaly monitor model -``.

    >>> import io, numpy as np
    >>> raw = io.BytesIO(np.arange(3200, dtype="<i2").tobytes())
    >>> blocks = list(PcmSource(raw, sr=16000, block_seconds=0.1))
    >>> [len(b) for b, sr in blocks], float(blocks[0][0][1]) == 1 / 32768
    ([1600, 1600], True)
    """

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        sr: int = 16000,
        format: str = "s16le",
        channels: int = 1,
        channel: int = 0,
        block_seconds: float = 0.1,
    ) -> None:
        if format not in _PCM_FORMATS:
            raise ParameterError(f"format must be one of {sorted(_PCM_FORMATS)}, got {format!r}")
        if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_PCM_CHANNELS:
            raise ParameterError(f"channels must be an int in [1, {MAX_PCM_CHANNELS}], got {channels!r}")
        if not isinstance(channel, int) or not 0 <= channel < channels:
            raise ParameterError(f"channel {channel} out of range for {channels} channel(s)")
        try:
            check_rate("<stdin>", sr)
        except AudioError as exc:
            raise ParameterError(f"sr: {exc.problem}") from None
        if not isinstance(block_seconds, (int, float)) or not 0 < block_seconds <= 60:
            raise ParameterError(f"block_seconds must be in (0, 60], got {block_seconds!r}")
        self.stream = stream
        self.sr = sr
        self.format = format
        self.channels = channels
        self.channel = channel
        self.block_seconds = float(block_seconds)

    def __iter__(self) -> Iterator[Block]:
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        dtype = _PCM_FORMATS[self.format]
        frame_bytes = dtype.itemsize * self.channels
        want = max(1, round(self.block_seconds * self.sr)) * frame_bytes
        pending = b""
        while True:
            data = stream.read(want - len(pending)) if hasattr(stream, "read") else b""
            if not data:
                if len(pending) >= frame_bytes:  # pragma: no cover - only with odd short reads
                    yield self._decode(pending[: len(pending) // frame_bytes * frame_bytes], dtype), self.sr
                return
            pending += data
            usable = len(pending) // frame_bytes * frame_bytes
            if usable and (len(pending) >= want or usable == len(pending)):
                block, pending = pending[:usable], pending[usable:]
                yield self._decode(block, dtype), self.sr

    def _decode(self, data: bytes, dtype: np.dtype[Any]) -> FloatArray:
        frames = np.frombuffer(data, dtype=dtype).reshape(-1, self.channels)[:, self.channel]
        scale = 1.0 / 32768.0 if dtype.kind == "i" else 1.0
        decoded: FloatArray = np.multiply(frames, scale, dtype=np.float32)
        check_samples("<stdin>", decoded)  # f32le: NaN, inf and absurd magnitudes are refused as in a file
        return decoded
