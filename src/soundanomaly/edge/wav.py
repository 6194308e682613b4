"""WAV input for the edge runtime with the standard library: RIFF/WAVE files and streams, block by block."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import AudioError

__all__ = ["BLOCK_FRAMES", "WavStream", "pick_channel"]

#: Most frames read from a WAV stream at a time.
BLOCK_FRAMES = 1 << 15
_PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


class WavStream:
    """Read a RIFF/WAVE file or stream block by block (16/32-bit PCM or 32-bit float, any channel count).

    A data chunk of unknown size (``arecord`` on a pipe writes 0 or 0xFFFFFFFF) is read to the end.

    Parameters
    ----------
    handle : binary file object
    name : str
        Shown in errors.
    """

    def __init__(self, handle: BinaryIO, name: str) -> None:
        self.handle, self.name = handle, name
        head = self._read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioError(name, "not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int] | None = None
        while True:
            chunk = self._read(8)
            if len(chunk) < 8:
                raise AudioError(name, "no data chunk")
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"data":
                break
            if size > 1 << 20:
                raise AudioError(name, f"{kind!r} chunk of {size} bytes before the audio; refusing")
            body = self._read(size + (size & 1))
            if kind == b"fmt ":
                fmt = self._format(body)
        if fmt is None:
            raise AudioError(name, "no fmt chunk before the data")
        self.tag, self.channels, self.sample_rate, self.bits = fmt
        self._frame_bytes = self.channels * self.bits // 8
        self._left = None if size in (0, 0xFFFFFFFF) else size

    def _read(self, n: int) -> bytes:
        return self.handle.read(n)

    def _format(self, body: bytes) -> tuple[int, int, int, int]:
        if len(body) < 16:
            raise AudioError(self.name, "fmt chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == 0xFFFE and len(body) >= 40 and body[26:40] == _PCM_GUID_TAIL:
            tag = struct.unpack("<H", body[24:26])[0]  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
        if (tag, bits) not in ((1, 16), (1, 32), (3, 32)):
            raise AudioError(self.name, f"unsupported WAV encoding (format tag {tag}, {bits} bits); use 16-bit PCM")
        if not 1 <= channels <= 1024 or not 1 <= rate <= 384_000:
            raise AudioError(self.name, f"implausible WAV header ({channels} channels at {rate} Hz)")
        return tag, channels, rate, bits

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[npt.NDArray[np.float32]]:
        """Float32 blocks of shape ``(n, channels)``, PCM scaled to [-1, 1) as the library reads it."""
        while self._left is None or self._left > 0:
            want = frames * self._frame_bytes
            if self._left is not None:
                want = min(want, self._left)
            data = self._read(want)
            data = data[: len(data) - len(data) % self._frame_bytes]
            if not data:
                return
            if self._left is not None:
                self._left -= len(data)
            yield self._decode(data)

    def _decode(self, data: bytes) -> npt.NDArray[np.float32]:
        if self.tag == 3:
            values = np.frombuffer(data, dtype="<f4").astype(np.float32)
        elif self.bits == 16:
            values = np.frombuffer(data, dtype="<i2") * np.float32(1.0 / 32768.0)
        else:
            values = (np.frombuffer(data, dtype="<i4") * (1.0 / 2147483648.0)).astype(np.float32)
        return values.reshape(-1, self.channels)


def pick_channel(block: npt.NDArray[np.float32], channel: int | str, name: str) -> npt.NDArray[np.float32]:
    """The model's channel of a ``(n, channels)`` block, or their mean (float32, as the library mixes down)."""
    if channel == "mean":
        return np.asarray(block.mean(axis=1, dtype=np.float32), dtype=np.float32)
    assert isinstance(channel, int)
    if not -block.shape[1] <= channel < block.shape[1]:
        raise AudioError(name, f"the model listens to channel {channel}; the audio has {block.shape[1]}")
    return np.ascontiguousarray(block[:, channel])
