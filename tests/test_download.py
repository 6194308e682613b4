"""Downloads against a local HTTP server on 127.0.0.1: resume, verify, extract, idempotence, errors, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.datasets import DCASE, MIMII, download, synthetic
from soundanomaly.datasets import fetch as fetching
from soundanomaly.datasets.download import (
    ChecksumError,
    DiskFullError,
    DownloadError,
    DownloadInterruptedError,
    RemoteFile,
    RemoteNotFoundError,
    download_dcase,
    download_mimii,
    fetch,
)
from soundanomaly.exceptions import ParameterError, SoundAnomalyError


def _wav(seed: int, *, anomaly: str | None = None, duration: float = 0.25) -> bytes:
    clip = synthetic.generate_clip(0, anomaly=anomaly, severity=1.0, duration=duration, seed=seed, clip_index=seed)
    buffer = io.BytesIO()
    sf.write(buffer, clip, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # stored: WAVs barely compress
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class Server:
    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the first GET is cut
    ignore_range: bool = False
    always_cut: int | None = None  # every GET is cut after this many bytes (a mirror that always stops short)
    requests: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            data = state.files.get(self.path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = state.drop_after.pop(self.path, state.always_cut)
            if cut is not None:  # a dropped connection mid-file
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def mimii_zip() -> bytes:
    files = {}
    for machine_id in (0, 2):
        for i in range(3):
            files[f"fan/id_{machine_id:02d}/normal/{i:08d}.wav"] = _wav(10 * machine_id + i)
        files[f"fan/id_{machine_id:02d}/abnormal/00000000.wav"] = _wav(50 + machine_id, anomaly="bearing_wear")
    return _zip(files)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetching, "_CHUNK", 4096)
    monkeypatch.setattr(download, "_CHUNK", 4096)  # several chunks per tiny archive
    monkeypatch.setattr(fetching, "_RETRY_WAIT", 0.0)


def _serve_mimii(server: Server, data: bytes, *, md5: str | None = None) -> dict[str, RemoteFile]:
    server.files["/files/6_dB_fan.zip"] = data
    return {"6_dB_fan.zip": RemoteFile(md5 or _md5(data), len(data))}


def test_extracts_only_requested_ids_and_is_idempotent(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    kw = {"machine": "fan", "snr": 6, "base_url": f"{server.base}/files", "registry": registry, "progress": False}
    folder = download_mimii(tmp_path, ids=[0], **kw)  # type: ignore[arg-type]
    assert folder == tmp_path / "6_dB_fan"
    assert (folder / "fan" / "id_00" / ".soundanomaly.json").is_file()
    assert not (folder / "fan" / "id_02").exists()  # only the requested id was unpacked
    clips = MIMII(tmp_path)
    assert len(clips) == 4 and {r.machine_id for r in clips} == {0} and {r.snr for r in clips} == {6.0}
    assert (folder / "fan" / "id_00" / "normal" / "00000001.wav").read_bytes() == zipfile.ZipFile(
        io.BytesIO(mimii_zip)
    ).read("fan/id_00/normal/00000001.wav")
    n_requests = len(server.requests)
    assert download_mimii(tmp_path, ids=[0], **kw) == folder  # type: ignore[arg-type]
    assert len(server.requests) == n_requests  # verified locally, no network
    download_mimii(tmp_path, ids=[2], **kw)  # type: ignore[arg-type]
    assert len(server.requests) == n_requests  # from the kept, verified archive
    assert len(MIMII(tmp_path)) == 8
    # a damaged extracted file is noticed: the id is extracted again
    (folder / "fan" / "id_02" / "normal" / "00000000.wav").write_bytes(b"x")
    download_mimii(tmp_path, ids=[2], **kw)  # type: ignore[arg-type]
    assert sf.info(str(folder / "fan" / "id_02" / "normal" / "00000000.wav")).frames == 4000


def test_resumes_after_a_dropped_connection(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    server.drop_after["/files/6_dB_fan.zip"] = len(mimii_zip) // 3
    download_mimii(tmp_path, machine="fan", snr=6, base_url=f"{server.base}/files", registry=registry, progress=False)
    ranges = [rng for path, rng in server.requests if path == "/files/6_dB_fan.zip"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(mimii_zip) // 3}-"  # resumed, not restarted
    assert (tmp_path / ".downloads" / "6_dB_fan.zip").read_bytes() == mimii_zip
    assert len(MIMII(tmp_path)) == 8
    # all ids, archive deleted: the markers say what the archive held, so no download again
    n_requests = len(server.requests)
    download_mimii(
        tmp_path, machine="fan", snr=6, base_url=f"{server.base}/files", registry=registry, progress=False,
        keep_archive=False,
    )  # fmt: skip
    assert not list((tmp_path / ".downloads").iterdir()) and len(server.requests) == n_requests
    download_mimii(tmp_path, machine="fan", snr=6, base_url="http://127.0.0.1:9", registry=registry, progress=False)


def test_restarts_when_the_server_ignores_range(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    server.drop_after["/files/6_dB_fan.zip"] = 5000
    server.ignore_range = True
    download_mimii(
        tmp_path, machine="fan", snr=6, ids=[2], base_url=f"{server.base}/files", registry=registry, progress=False
    )
    assert (tmp_path / ".downloads" / "6_dB_fan.zip").read_bytes() == mimii_zip


def test_corrupted_byte_is_a_checksum_error_and_nothing_is_extracted(
    server: Server, mimii_zip: bytes, tmp_path: Path
) -> None:
    corrupted = bytearray(mimii_zip)
    corrupted[len(corrupted) // 2] ^= 0xFF
    registry = _serve_mimii(server, bytes(corrupted), md5=_md5(mimii_zip))
    with pytest.raises(ChecksumError, match="does not match"):
        download_mimii(
            tmp_path, machine="fan", snr=6, base_url=f"{server.base}/files", registry=registry, progress=False
        )
    assert not (tmp_path / "6_dB_fan").exists()
    assert not list((tmp_path / ".downloads").iterdir())  # the bad file is gone, no .part to resume from
    with pytest.raises(ParameterError, match="no clips found"):
        MIMII(tmp_path)


def test_404_and_bad_parameters(server: Server, tmp_path: Path) -> None:
    registry = {"6_dB_fan.zip": RemoteFile("0" * 32, 10)}
    with pytest.raises(RemoteNotFoundError, match="404"):
        download_mimii(tmp_path, machine="fan", snr=6, base_url=server.base, registry=registry, progress=False)
    with pytest.raises(ParameterError, match="snr"):
        download_mimii(tmp_path, machine="fan", snr=3)
    with pytest.raises(ParameterError, match="ids"):
        download_mimii(tmp_path, machine="fan", snr=6, ids=[-1])
    with pytest.raises(ParameterError, match="md5"):
        fetch(f"{server.base}/x", tmp_path / "x", md5="abc")
    assert not (tmp_path / "6_dB_fan").exists()


def test_unknown_id_lists_the_available_ones(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    with pytest.raises(ParameterError, match=r"\[4\] are not in 6_dB_fan.zip; it holds ids 0, 2"):
        download_mimii(
            tmp_path, machine="fan", snr=6, ids=[0, 4], base_url=f"{server.base}/files", registry=registry,
            progress=False,
        )  # fmt: skip
    assert not (tmp_path / "6_dB_fan" / "fan" / "id_00").exists()


def test_full_disk_is_refused_before_writing(
    server: Server, mimii_zip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _serve_mimii(server, mimii_zip)
    monkeypatch.setattr(fetching, "_free_bytes", lambda folder: 10_000)
    with pytest.raises(DiskFullError, match=r"only 10\.0 kB is free"):
        download_mimii(
            tmp_path, machine="fan", snr=6, base_url=f"{server.base}/files", registry=registry, progress=False
        )
    assert not list((tmp_path / ".downloads").iterdir())


def test_ctrl_c_keeps_the_partial_file_and_the_next_call_resumes(
    server: Server, mimii_zip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _serve_mimii(server, mimii_zip)
    calls = {"n": 0}
    original = fetching._ByteProgress.update

    def interrupt_on_third_chunk(self: fetching._ByteProgress, n: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, n)

    monkeypatch.setattr(fetching._ByteProgress, "update", interrupt_on_third_chunk)
    kw = {"machine": "fan", "snr": 6, "base_url": f"{server.base}/files", "registry": registry, "progress": False}
    with pytest.raises(DownloadInterruptedError, match="kept, run the same command again to resume"):
        download_mimii(tmp_path, **kw)  # type: ignore[arg-type]
    part = tmp_path / ".downloads" / "6_dB_fan.zip.part"
    assert part.stat().st_size == 3 * 4096
    assert not (tmp_path / "6_dB_fan").exists()
    monkeypatch.setattr(fetching._ByteProgress, "update", original)
    download_mimii(tmp_path, **kw)  # type: ignore[arg-type]
    assert server.requests[-1] == ("/files/6_dB_fan.zip", f"bytes={3 * 4096}-")
    assert len(MIMII(tmp_path)) == 8


def test_interrupted_extraction_leaves_nothing_that_looks_complete(
    server: Server, mimii_zip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _serve_mimii(server, mimii_zip)
    calls = {"n": 0}
    original = shutil.copyfileobj

    def interrupt_on_second_file(src: Any, dst: Any, length: int = 0) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", interrupt_on_second_file)
    kw = {"machine": "fan", "snr": 6, "ids": [0], "base_url": f"{server.base}/files", "registry": registry}
    with pytest.raises(DownloadInterruptedError, match="extraction interrupted"):
        download_mimii(tmp_path, progress=False, **kw)  # type: ignore[arg-type]
    fan = tmp_path / "6_dB_fan" / "fan"
    assert not (fan / "id_00").exists() and not list(fan.iterdir())  # no id folder, no temporary left
    monkeypatch.setattr(shutil, "copyfileobj", original)
    download_mimii(tmp_path, progress=False, **kw)  # type: ignore[arg-type]
    assert len(MIMII(tmp_path)) == 4


def test_never_replaces_a_folder_it_did_not_write(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    mine = tmp_path / "6_dB_fan" / "fan" / "id_00" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes")
    with pytest.raises(SoundAnomalyError, match="move it away"):
        download_mimii(
            tmp_path, machine="fan", snr=6, ids=[0], base_url=f"{server.base}/files", registry=registry,
            progress=False,
        )  # fmt: skip
    assert mine.read_text() == "my notes"


def test_progress_bar_reports_size_and_rate(
    server: Server, mimii_zip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _serve_mimii(server, mimii_zip)
    download_mimii(tmp_path, machine="fan", snr=6, ids=[0], base_url=f"{server.base}/files", registry=registry)
    err = capsys.readouterr().err
    assert re.search(r"6_dB_fan\.zip  \d+\.\d kB / \d+\.\d kB  [\d.]+ [kMG]?B/s", err)
    assert "extracting id_00" in err


# ---------------------------------------------------------------------------------------------- DCASE


def _dcase_zip() -> bytes:
    """A DCASE 2023-layout development archive for one machine type (tiny synthetic fan clips)."""
    files = {}
    for i in range(8):
        domain = "source" if i < 6 else "target"
        files[f"fan/train/section_00_{domain}_train_normal_{i:04d}_m-n_W.wav"] = _wav(100 + i, duration=1.0)
    for domain in ("source", "target"):
        for i in range(3):
            files[f"fan/test/section_00_{domain}_test_normal_{i:04d}_m-n_W.wav"] = _wav(200 + i, duration=1.0)
            files[f"fan/test/section_00_{domain}_test_anomaly_{i:04d}_m-n_W.wav"] = _wav(
                300 + i, anomaly="bearing_wear", duration=1.0
            )
    files["fan/attributes_00.csv"] = b"file_name,d1p,d1v\n"  # not a clip: left out
    return _zip(files)


def test_download_dcase_reads_the_checksum_from_the_zenodo_record(server: Server, tmp_path: Path) -> None:
    data = _dcase_zip()
    server.files["/records/7882613/files/dev_fan.zip"] = data
    record = {"files": [{"key": "dev_fan.zip", "size": len(data), "checksum": f"md5:{_md5(data)}"}]}
    server.files["/api/records/7882613"] = json.dumps(record).encode()
    folder = download_dcase(
        tmp_path,
        year=2023,
        machine="fan",
        base_url=f"{server.base}/records/7882613/files",
        api_url=f"{server.base}/api/records/7882613",
        progress=False,
    )
    clips = DCASE(folder)
    assert len(clips) == 20 and len(clips.filter(split="train")) == 8
    assert {r.domain for r in clips.filter(split="test", label="abnormal")} == {"source", "target"}
    with pytest.raises(ParameterError, match="year"):
        download_dcase(tmp_path, year=2019, machine="fan")


@pytest.mark.filterwarnings("ignore::soundanomaly.exceptions.CalibrationWarning")  # 8 training clips, on purpose
def test_cli_downloads_trains_and_evaluates_a_dcase_folder(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly.cli import main

    data = _dcase_zip()
    server.files["/mirror/dev_fan.zip"] = data
    root, model, report = tmp_path / "data", tmp_path / "model", tmp_path / "metrics.json"
    args = ["download", "dcase", "--year", "2023", "--machine", "fan", "--md5", _md5(data)]
    assert main([*args, "--url", f"{server.base}/mirror", "--quiet", str(root)]) == 0
    assert "ready in" in capsys.readouterr().out
    folder = root / "dcase2023_dev"
    assert main(["train", str(folder), "--out", str(model), "--detector", "gaussian"]) == 0
    # the 8 clips of the train split (less any held out), never the 6 normal test clips
    assert re.search(r"training gaussian on [78] normal clips", capsys.readouterr().err)
    assert main(["evaluate", str(model), str(folder), "--json", str(report)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "fan section_00 source" in out and "fan section_00 target" in out
    assert "DCASE Task 2 official score" in out
    metrics = json.loads(report.read_text())
    assert metrics["overall"]["n_clips"] == 12  # the test split only
    assert metrics["overall"]["roc_auc"] >= 0.7  # 0.89 measured; random is 0.5


def test_cli_download_mimii_parser_and_errors(
    server: Server, mimii_zip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly.cli import main

    server.files["/files/6_dB_fan.zip"] = mimii_zip
    # the real registry's MD5 does not match this tiny zip: a clear error, exit status 2
    assert main(["download", "mimii", "--machine", "fan", "--snr", "6", "--ids", "0", "--url",
                 f"{server.base}/files", "--quiet", str(tmp_path)]) == 2  # fmt: skip
    assert "does not match the registry's 0890f7d3c2fd8448634e69ff1d66dd47" in capsys.readouterr().err
    assert main(["download", "mimii", "--machine", "fan", "--snr", "6", "--url", f"{server.base}/nothing",
                 "--quiet", str(tmp_path)]) == 2  # fmt: skip
    assert "404" in capsys.readouterr().err
    np.testing.assert_equal(len(list(tmp_path.rglob("*.wav"))), 0)
    offline = ["download", "mimii", "--machine", "fan", "--snr", "6", "--url", "http://127.0.0.1:9"]
    assert main([*offline, "--ids", "0", "x2", str(tmp_path)]) == 2
    assert "--ids takes machine ids" in capsys.readouterr().err
    assert main([*offline, "--ids", "0", "2"]) == 2
    assert "DIR is missing" in capsys.readouterr().err


def test_cli_download_mimii_with_ids_before_dir(
    server: Server,
    mimii_zip: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from soundanomaly.cli import main

    server.files["/files/6_dB_fan.zip"] = mimii_zip
    monkeypatch.setitem(download.MIMII_REGISTRY, "6_dB_fan.zip", RemoteFile(_md5(mimii_zip), len(mimii_zip)))
    assert main(["download", "mimii", "--machine", "fan", "--snr", "6", "--url", f"{server.base}/files",
                 "--quiet", "--ids", "0", str(tmp_path)]) == 0  # fmt: skip
    assert "ready in" in capsys.readouterr().out
    assert {r.machine_id for r in MIMII(tmp_path)} == {0}


def test_a_finished_file_is_checked_and_a_wrong_one_is_never_used(server: Server, tmp_path: Path) -> None:
    payload = b"archive bytes" * 1000
    server.files["/a.zip"] = payload
    target = fetch(f"{server.base}/a.zip", tmp_path / "a.zip", md5=_md5(payload), progress=False)
    n_requests = len(server.requests)
    assert fetch(f"{server.base}/a.zip", target, md5=_md5(payload), progress=False) == target
    assert len(server.requests) == n_requests  # verified on disk, not downloaded again
    with pytest.raises(ChecksumError, match="delete it"):
        fetch(f"{server.base}/a.zip", target, md5="f" * 32, progress=False)
    assert target.read_bytes() == payload  # never deleted: it may be the user's


def test_zenodo_record_without_the_file_asks_for_md5(server: Server, tmp_path: Path) -> None:
    server.files["/api/records/1"] = json.dumps(
        {"files": [{"key": "dev_pump.zip", "checksum": "md5:" + "0" * 32}]}
    ).encode()
    with pytest.raises(download.DownloadError, match="pass md5="):
        download_dcase(tmp_path, year=2022, machine="fan", api_url=f"{server.base}/api/records/1", progress=False)
    with pytest.raises(RemoteNotFoundError):
        download_dcase(tmp_path, year=2022, machine="fan", api_url=f"{server.base}/api/records/2", progress=False)


def test_a_mirror_that_always_stops_short_ends_with_one_error(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    """Before: `download --url` retried forever (~500 requests/s) against a mirror that ignores Range and stops short."""
    registry = _serve_mimii(server, mimii_zip)
    server.always_cut, server.ignore_range = 3000, True
    with pytest.raises(DownloadError, match="keeps stopping short"):
        download_mimii(
            tmp_path, machine="fan", snr=6, ids=[2], base_url=f"{server.base}/files", registry=registry,
            progress=False, retries=3,
        )  # fmt: skip
    assert len(server.requests) <= 4 + 1  # the first request and `retries` retries without new bytes
    assert not (tmp_path / "fan").exists()


def test_a_mirror_that_stops_short_but_resumes_still_finishes(server: Server, mimii_zip: bytes, tmp_path: Path) -> None:
    registry = _serve_mimii(server, mimii_zip)
    server.always_cut = 20_000  # every request brings new bytes: progress resets the retry count
    download_mimii(
        tmp_path, machine="fan", snr=6, ids=[2], base_url=f"{server.base}/files", registry=registry,
        progress=False, retries=2,
    )  # fmt: skip
    assert (tmp_path / ".downloads" / "6_dB_fan.zip").read_bytes() == mimii_zip
    assert len(server.requests) > 3


def test_the_attempts_are_bounded_even_with_progress(
    server: Server, mimii_zip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _serve_mimii(server, mimii_zip)
    server.always_cut = 1000
    monkeypatch.setattr(fetching, "_MAX_ATTEMPTS_PER_RETRY", 2)
    with pytest.raises(DownloadError, match="attempts"):
        download_mimii(
            tmp_path, machine="fan", snr=6, ids=[2], base_url=f"{server.base}/files", registry=registry,
            progress=False, retries=1,
        )  # fmt: skip
    assert len(server.requests) == 4


@pytest.mark.parametrize("size", ["12 MB", 1.5, -3, True, [1]])
def test_zenodo_record_with_a_bad_size_is_a_clear_error(server: Server, tmp_path: Path, size: object) -> None:
    """Before: a raw ValueError from int("12 MB")."""
    record = {"files": [{"key": "dev_fan.zip", "size": size, "checksum": "md5:" + "0" * 32}]}
    server.files["/api/records/1"] = json.dumps(record).encode()
    with pytest.raises(DownloadError, match="not a whole number of bytes"):
        download_dcase(tmp_path, year=2023, machine="fan", base_url=f"{server.base}/files",
                       api_url=f"{server.base}/api/records/1", progress=False)  # fmt: skip
