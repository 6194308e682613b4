"""Spectrogram images: the reference recipe's second route (image classification).

Each clip becomes one 8-bit image of its log-mel spectrogram: time runs left
to right (313 px for 10 s at hop 512), mel bands bottom to top (64 px, low
frequencies at the bottom), min-max scaled per image, loud = dark.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly._progress import progress as _progress
from soundanomaly._validation import Options, Satisfies, validate_params
from soundanomaly.exceptions import AudioError, MissingDependencyError, ParameterError
from soundanomaly.features.base import (
    SPECTRAL_LIMITS,
    BaseFeatureExtractor,
    check_rate_matches,
    check_sample_rate,
)
from soundanomaly.features.logmel import log_mel_by_frame
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["SpectrogramImages", "decode_png", "encode_png"]


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of an 8-bit grayscale ``(H, W)`` or RGB ``(H, W, 3)`` image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """The 8-bit grayscale ``(H, W)`` array of a PNG (colour images are converted to luminance)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


class SpectrogramImages(BaseFeatureExtractor):
    """Clip → spectrogram image, as the reference's Rekognition route made them.

    As a feature extractor it returns one vector per clip: the grayscale image
    flattened, scaled to [0, 1] (shape ``(1, height * width)``), which is what
    :class:`~soundanomaly.detectors.SpectrogramCNNDetector` consumes.

    Parameters
    ----------
    n_mels : int, default 64
        Image height before resizing (mel bands).
    n_fft, hop_length : int, default 1024, 512
        STFT parameters; the width is ``1 + n_samples // hop_length`` (313 px for 10 s at 16 kHz).
    size : (width, height) or None, default None
        Resize to this many pixels (bilinear); ``None`` keeps one pixel per frame and band.
    scaling : {"minmax", "fixed"}, default "minmax"
        ``minmax`` stretches each image's dB range to 0-255; ``fixed`` maps
        -80..0 dB (relative to the clip's loudest bin) to 0-255.
    colormap : str or None, default None
        ``None``: grayscale, loud = dark. Else a matplotlib colormap name for
        RGB images (loud = the colormap's high end), written by :meth:`write_images` only.
    sr : int, default 16000
        Sample rate (Hz) the images are made at (saved with a model; a model
        saved without it means 16000). Files at a higher rate are resampled to
        it with soxr by :meth:`extract`, :meth:`transform_file` and
        :meth:`write_images`; files at a lower rate are refused (their upper
        band is missing); :meth:`image` refuses other rates.

    Examples
    --------
    >>> import numpy as np
    >>> clip = np.random.default_rng(0).normal(size=160000).astype("float32")
    >>> images = SpectrogramImages()
    >>> images.image(clip, 16000).shape, images.transform(clip, 16000).shape
    ((64, 313), (1, 20032))
    """

    def __init__(
        self,
        *,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 512,
        size: tuple[int, int] | None = None,
        scaling: Literal["minmax", "fixed"] = "minmax",
        colormap: str | None = None,
        sr: int = 16000,
    ) -> None:
        validate_params(
            {"n_mels": n_mels, "n_fft": n_fft, "hop_length": hop_length, "size": size, "scaling": scaling},
            {
                **SPECTRAL_LIMITS,
                "size": [Satisfies(_image_size, "(width, height) in 1..4096 pixels"), None],
                "scaling": [Options("minmax", "fixed")],
            },
        )
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.size: tuple[int, int] | None = (int(size[0]), int(size[1])) if size is not None else None
        self.scaling = scaling
        self.colormap = colormap
        self.sr = check_sample_rate(sr)

    def params(self) -> dict[str, Any]:
        """Parameters that define the images (JSON-serialisable)."""
        return {
            "name": "SpectrogramImages",
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "size": list(self.size) if self.size else None,
            "scaling": self.scaling,
            "colormap": self.colormap,
            "sr": self.sr,
        }

    def image(self, signal: FloatArray, sr: int) -> npt.NDArray[np.uint8]:
        """The grayscale image of one clip, shape ``(height, width)``, uint8, loud = dark.

        ``sr`` must equal :attr:`sr`.
        """
        check_rate_matches(sr, self.sr, type(self).__name__)
        signal = np.asarray(signal)
        if signal.ndim != 1:
            raise ParameterError(f"signal must be mono (1-D), got shape {signal.shape}")
        if len(signal) < self.n_fft // 2:
            raise AudioError("<signal>", f"clip too short for an image: {len(signal)} samples")
        db = log_mel_by_frame(signal, sr, self.n_mels, self.n_fft, self.hop_length, 80.0).T  # (mels, frames)
        if self.scaling == "minmax":
            low, high = float(db.min()), float(db.max())
        else:
            low, high = -80.0, 0.0
        scaled = (db - low) / (high - low) if high > low else np.zeros_like(db)
        pixels = np.round(255.0 * (1.0 - np.clip(scaled, 0.0, 1.0))).astype(np.uint8)  # loud = dark
        pixels = pixels[::-1]  # low frequencies at the bottom
        if self.size is not None:
            from PIL import Image

            pixels = np.asarray(Image.fromarray(pixels).resize(self.size, Image.Resampling.BILINEAR), dtype=np.uint8)
        return np.ascontiguousarray(pixels)

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        """The image flattened and scaled to [0, 1]: shape ``(1, height * width)``, float32."""
        return (self.image(signal, sr).reshape(1, -1) / np.float32(255.0)).astype(np.float32)

    def png(self, signal: FloatArray, sr: int) -> bytes:
        """PNG bytes of the clip's image (RGB when a colormap is set)."""
        pixels = self.image(signal, sr)
        if self.colormap:
            import matplotlib

            rgba = matplotlib.colormaps[self.colormap](1.0 - pixels / 255.0)
            return encode_png((rgba[..., :3] * 255).astype(np.uint8))
        return encode_png(pixels)

    def write_images(
        self,
        paths: Sequence[PathLike],
        out: str,
        *,
        names: Sequence[str] | None = None,
        channel: int = 0,
        progress: bool = True,
    ) -> list[str]:
        """Write one PNG per clip under ``out`` (a folder or an fsspec URL such as ``s3://bucket/prefix``).

        Parameters
        ----------
        paths : clips to draw
        out : str
            Destination folder or URL prefix.
        names : sequence of str, optional
            Relative file names (default: ``<label folder>/<stem>.png`` for MIMII-layout paths).

        Returns
        -------
        list of str
            Where each image went (same order as ``paths``).
        """
        from soundanomaly.audio import decode_samples, read_bytes
        from soundanomaly.features.base import as_signal

        if names is not None and len(names) != len(paths):
            raise ParameterError(f"got {len(names)} names for {len(paths)} paths")
        written = []
        for i, path in enumerate(_progress(paths, total=len(paths), desc="images", enabled=progress)):
            name = os.fspath(path)
            samples, gain, sr, _ = decode_samples(
                read_bytes(name), name=name, channel=channel, sr=self.sr, upsample=False
            )
            signal = as_signal(samples, gain)
            try:
                data = self.png(signal, sr)
            except AudioError as exc:
                raise AudioError(path, exc.problem) from exc
            name = names[i] if names is not None else _default_name(os.fspath(path))
            target = f"{out.rstrip('/')}/{name}"
            _write_bytes(target, data)
            written.append(target)
        return written


def _default_name(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    stem = os.path.splitext(parts[-1])[0]
    prefix = "_".join(p for p in parts[-5:-1] if p)
    return f"{parts[-2] if len(parts) > 1 else 'clips'}/{prefix}_{stem}.png"


def _write_bytes(target: str, data: bytes) -> None:
    if "://" in target:
        from soundanomaly._clipfiles import fsspec_module

        try:
            with fsspec_module(f"writing {target}").open(target, "wb") as handle:
                handle.write(data)
        except ImportError as exc:
            raise MissingDependencyError("s3fs", "aws", f"writing {target}") from exc
        return
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = f"{target}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)


def _image_size(size: Any) -> bool:
    return len(size) == 2 and all(isinstance(v, (int, np.integer)) and 1 <= v <= 4096 for v in size)
