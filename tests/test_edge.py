"""The edge runtime (#25): scores like the library, streams like the Monitor, checks exported files before running them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from soundanomaly.detectors import GaussianDetector
from soundanomaly.exceptions import AudioError, ModelFormatError
from soundanomaly.features import ClipFeatures, LogMelFrames

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from soundanomaly import edge  # noqa: E402 - after the skips
from soundanomaly.export import save_onnx, to_onnx  # noqa: E402

SR = 16000
REPO = Path(__file__).resolve().parents[1]


def _noise(
    rng: np.random.Generator, seconds: float, level: float = 0.1, tone: float = 1000.0
) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * SR)) / SR
    return (level * rng.standard_normal(len(t)) + 0.05 * np.sin(2 * np.pi * tone * t)).astype(np.float32)


def _write_wav(path: Path, samples: npt.NDArray[np.float32], sr: int = SR) -> Path:
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sr)
        handle.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def detector() -> GaussianDetector:
    rng = np.random.default_rng(3)
    features = LogMelFrames()
    train = ClipFeatures.from_arrays([features.transform(_noise(rng, 2.0, tone=1000 + 9 * i), SR) for i in range(12)])
    return GaussianDetector(threshold=1.6).fit(train)


@pytest.fixture(scope="module")
def exported(detector: GaussianDetector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_onnx(detector, tmp_path_factory.mktemp("edge") / "model.onnx", window_seconds=2.0)


def test_a_clip_of_one_window_scores_as_the_library(exported: Path, detector: GaussianDetector, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    paths = [
        str(_write_wav(tmp_path / f"{i}.wav", _noise(rng, 2.0, level=lvl, tone=t)))
        for i, (lvl, t) in enumerate([(0.1, 1000), (0.3, 2500), (0.02, 400)])
    ]
    expected = detector.score(paths)
    model = edge.EdgeModel(exported)
    for path, score in zip(paths, expected, strict=True):
        (record,) = edge.score_file(model, path)
        assert record.kind == "window" and record.start == 0.0 and record.end == 2.0
        assert record.score == pytest.approx(score, rel=1e-4)
        assert record.label == int(score > detector.threshold_)
    assert expected.max() > 2 * expected.min()


def test_multichannel_extensible_wav_uses_the_models_channel(detector: GaussianDetector, tmp_path: Path) -> None:
    import soundfile

    rng = np.random.default_rng(5)
    stereo = np.stack([_noise(rng, 2.0), _noise(rng, 2.0, level=0.4), _noise(rng, 2.0, level=0.01)], axis=1)
    path = tmp_path / "three.wav"
    soundfile.write(path, stereo, SR, subtype="PCM_16")  # more than 2 channels: WAVE_FORMAT_EXTENSIBLE
    for channel in (1, -1, "mean"):
        model_detector = GaussianDetector(threshold=1.6, channel=channel)
        model_detector.fit(ClipFeatures.from_arrays([LogMelFrames().transform(_noise(rng, 2.0), SR) for _ in range(8)]))
        out = save_onnx(model_detector, tmp_path / f"c{channel}.onnx", window_seconds=2.0)
        (record,) = edge.score_file(edge.EdgeModel(out), str(path))
        assert record.score == pytest.approx(model_detector.score([str(path)])[0], rel=1e-4)


def test_stream_matches_the_monitor(exported: Path, detector: GaussianDetector) -> None:
    from soundanomaly.monitor import Alerter, Monitor, WindowScore

    rng = np.random.default_rng(2)
    stream = np.concatenate([_noise(rng, 5.0), _noise(rng, 5.0, level=0.5, tone=3000), _noise(rng, 6.0)])
    monitor = Monitor(detector, window_seconds=2.0, hop_seconds=0.5)
    expected = [w for start in range(0, len(stream), 7000) for w in monitor.push(stream[start : start + 7000], SR)]
    runner = edge.EdgeMonitor(edge.EdgeModel(exported), hop_seconds=0.5)
    records = [r for start in range(0, len(stream), 5000) for r in runner.push(stream[start : start + 5000])]
    windows = [r for r in records if r.kind == "window"]
    assert [(w.start, w.end) for w in windows] == [(w.start, w.end) for w in expected]
    np.testing.assert_allclose([w.score for w in windows], [w.score for w in expected], rtol=1e-4)
    # the same hysteresis: alerts on the same score sequence
    alerter = Alerter(detector.threshold_)
    library_events = []
    for w in windows:
        raised, cleared = alerter.update(WindowScore(w.index or 0, w.start, w.end or 0.0, w.score, w.threshold, 0.0))
        library_events += [("alert", raised.start, raised.detected_at)] if raised else []
        library_events += [("clear", cleared.start, cleared.end)] if cleared else []
    mine = [(r.kind, r.start, r.detected_at if r.kind == "alert" else r.end) for r in records if r.kind != "window"]
    assert mine == library_events and len(mine) >= 2


@pytest.mark.parametrize("seed", range(5))
def test_hysteresis_equals_the_library_alerter(seed: int) -> None:
    from soundanomaly.monitor import Alerter, WindowScore

    class Fixed:
        def __init__(self, scores: list[float]) -> None:
            self.scores = iter(scores)
            self.info = edge.ModelInfo(100, 100, 100, 1.0, 0, {})

        def score_window(self, pcm: Any) -> tuple[float, int]:
            value = next(self.scores)
            return value, int(value > 1.0)

    rng = np.random.default_rng(seed)
    scores = (rng.random(300) * 2.0).tolist()
    raise_k, raise_n, clear_m = int(rng.integers(1, 3)), 3, int(rng.integers(1, 4))
    runner = edge.EdgeMonitor(Fixed(scores), raise_k=raise_k, raise_n=raise_n, clear_m=clear_m)  # type: ignore[arg-type]
    records = runner.push(np.zeros(300 * 100, dtype=np.float32))
    alerter = Alerter(1.0, raise_k=raise_k, raise_n=raise_n, clear_m=clear_m)
    expected = []
    for i, s in enumerate(scores):
        raised, cleared = alerter.update(WindowScore(i, float(i), float(i + 1), s, 1.0, 0.0))
        if raised:
            expected.append(("alert", raised.start, raised.detected_at, raised.n_windows))
        if cleared:
            expected.append(("clear", cleared.start, cleared.end, cleared.n_windows))
    mine = [
        (r.kind, r.start, r.detected_at if r.kind == "alert" else r.end, r.n_windows)
        for r in records
        if r.kind != "window"
    ]
    assert mine == expected and len(expected) > 4


def _tampered(detector: GaussianDetector, path: Path, change: Any) -> Path:
    model = to_onnx(detector, window_seconds=2.0)
    change(model)
    path.write_bytes(model.SerializeToString())
    return path


def _set_meta(key: str, value: str) -> Any:
    def change(model: Any) -> None:
        for prop in model.metadata_props:
            if prop.key == f"soundanomaly.{key}":
                prop.value = value

    return change


def _drop_meta(model: Any) -> None:
    keep = [p for p in model.metadata_props if p.key != "soundanomaly.threshold"]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


def _add_node(op: str, domain: str = "") -> Any:
    def change(model: Any) -> None:
        model.graph.node.append(onnx.helper.make_node(op, ["pcm"], ["extra"], domain=domain))

    return change


def _external(model: Any) -> None:
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"


def _tensor_attribute(model: Any) -> None:
    tensor = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [0.0])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("value", tensor))


CHANGES = {
    "operator": (_add_node("Einsum"), "operator Einsum is not allowed"),
    "domain": (_add_node("Add", "com.microsoft"), "com.microsoft.Add is not allowed"),
    "external": (_external, "external data"),
    "tensor-attribute": (_tensor_attribute, "tensor attribute"),
    "no-threshold": (_drop_meta, "metadata .'threshold'. missing"),
    "nan-threshold": (_set_meta("threshold", "nan"), "must be finite"),
    "huge-window": (_set_meta("window_samples", str(10**12)), "outside"),
    "bad-rate": (_set_meta("sample_rate", "12"), "outside"),
    "window-mismatch": (_set_meta("window_samples", "1000"), "input must be pcm"),
    "bad-channel": (_set_meta("channel", "-5000"), "outside"),
    "format": (_set_meta("format", "99"), "export format"),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_tampered_file_is_refused_before_it_runs(name: str, detector: GaussianDetector, tmp_path: Path) -> None:
    change, message = CHANGES[name]
    path = _tampered(detector, tmp_path / "bad.onnx", change)
    with pytest.raises(ModelFormatError, match=message):
        edge.EdgeModel(path)


def test_garbage_and_truncated_files_are_refused(exported: Path, tmp_path: Path) -> None:
    for data in (b"", b"\xff" * 64, exported.read_bytes()[:-500], b"RIFF1234WAVEfmt "):
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(data)
        with pytest.raises(ModelFormatError):
            edge.EdgeModel(bad)


def test_audio_errors_name_the_file(exported: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model = edge.EdgeModel(exported)
    cases = {
        "short.wav": (_write_wav(tmp_path / "short.wav", _noise(rng, 1.0)), "shorter than one window"),
        "rate.wav": (_write_wav(tmp_path / "rate.wav", _noise(rng, 3.0), sr=8000), "8000 Hz"),
        "text.wav": (tmp_path / "text.wav", "not a RIFF/WAVE"),
    }
    (tmp_path / "text.wav").write_text("hello")
    for name, (path, message) in cases.items():
        with pytest.raises(AudioError, match=message) as info:
            edge.score_file(model, str(path))
        assert name in str(info.value)


def test_cli_writes_json_lines(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    clip = _write_wav(tmp_path / "clip.wav", np.concatenate([_noise(rng, 3.0), _noise(rng, 3.0, level=0.6, tone=3000)]))
    assert edge.main([str(exported), str(clip), "--hop", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    windows = [r for r in lines if r["kind"] == "window"]
    assert len(windows) == 5 and all(r["source"] == str(clip) for r in lines)
    assert {"alert"} <= {r["kind"] for r in lines}
    assert edge.main([str(exported), str(tmp_path / "missing.wav")]) == 1
    assert edge.main([str(tmp_path / "missing.onnx"), str(clip)]) == 2


def test_a_live_wav_stream_on_stdin(exported: Path, detector: GaussianDetector, tmp_path: Path) -> None:
    """``arecord | python -m soundanomaly.edge model -``: a WAV header with an unknown data size, read to the end."""
    rng = np.random.default_rng(8)
    clip = _noise(rng, 4.0)
    data = bytearray(_write_wav(tmp_path / "clip.wav", clip).read_bytes())
    data[40:44] = b"\xff\xff\xff\xff"  # what arecord writes on a pipe
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "soundanomaly.edge", str(exported), "-", "--hop", "2"],
        input=bytes(data),
        capture_output=True,
        env=env,
        check=True,
    )
    records = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert [(r["start"], r["end"]) for r in records] == [(0.0, 2.0), (1.984, 3.984)]  # hop: 62 feature hops
    first = detector.score(ClipFeatures.from_arrays([LogMelFrames().transform(clip[: 2 * SR], SR)]))[0]
    assert records[0]["score"] == pytest.approx(first, rel=1e-3)  # the WAV holds 16-bit samples of the clip


def test_cli_writes_the_audio_around_each_alert(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(4)
    signal = np.concatenate([_noise(rng, 5.0), _noise(rng, 4.0, level=0.6, tone=3000)])
    source = _write_wav(tmp_path / "fan.wav", signal)
    clips = tmp_path / "clips"
    assert edge.main([str(exported), str(source), "--events-only", "--clips", str(clips)]) == 0
    (alert,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"alert"' in line]
    with wave.open(alert["clip"], "rb") as handle:
        written = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    first = round((alert["start"] - 2.0) * SR)  # one window (2 s) before the first window above the threshold
    assert len(written) == round(alert["detected_at"] * SR) - first
    with wave.open(str(source), "rb") as handle:
        original = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(written, original[first : first + len(written)])
    assert Path(alert["clip"]).parent == clips
    with pytest.raises(SystemExit):  # --clips must be a folder path, given once
        edge.main([str(exported), str(source), "--clips"])


FORBIDDEN = ("scipy", "librosa", "sklearn", "matplotlib", "soundfile", "tensorflow", "soxr", "onnx")


def test_the_runtime_imports_no_scientific_stack(exported: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clip = _write_wav(tmp_path / "clip.wav", _noise(rng, 2.0))
    code = (
        "import sys, json\n"
        "from soundanomaly import edge\n"
        f"records = edge.score_file(edge.EdgeModel({str(exported)!r}), {str(clip)!r})\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


@pytest.mark.slow
def test_fresh_venv_with_numpy_and_onnxruntime_only(exported: Path, tmp_path: Path) -> None:
    """A gateway's install: a new venv, ``numpy onnxruntime`` (pip's cache), this package with ``--no-deps``."""
    import shutil
    import venv

    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(source)],
        check=True,
        capture_output=True,
    )
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    versions = [f"{name}=={__import__(name).__version__}" for name in ("numpy", "onnxruntime")]
    subprocess.run([*pip, *versions], check=True, capture_output=True)
    subprocess.run([*pip, "--no-deps", *map(str, wheel_dir.glob("*.whl"))], check=True, capture_output=True)
    rng = np.random.default_rng(0)
    clip = _write_wav(tmp_path / "clip.wav", _noise(rng, 2.0))
    code = (
        "import sys, json\n"
        "from soundanomaly import edge\n"
        f"(record,) = edge.score_file(edge.EdgeModel({str(exported)!r}), {str(clip)!r})\n"
        f"print(json.dumps([record.score, [m for m in {FORBIDDEN!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    score, imported = json.loads(out.stdout.splitlines()[-1])
    assert imported == [] and np.isfinite(score)
    cli = subprocess.run(
        [str(python), "-m", "soundanomaly.edge", str(exported), str(clip)], capture_output=True, text=True, cwd=tmp_path
    )
    assert cli.returncode == 0 and json.loads(cli.stdout.splitlines()[0])["score"] == pytest.approx(score)
