"""soundanomaly.scale: local pools, a real Dask LocalCluster, clips on moto's S3 server, kill/interrupt/resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.detectors import GaussianDetector
from soundanomaly.exceptions import OutputExistsError, ParameterError, SoundAnomalyError

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from soundanomaly.scale import extract_many, fit_many, iter_clips, score_clips, score_many  # noqa: E402

N_CLIPS = 24


def _write_clips(root: Path, n: int = N_CLIPS) -> list[str]:
    """Noise clips of 0.5 s in two MIMII-layout ids; every fifth one louder (anomalous)."""
    paths = []
    for i in range(n):
        folder = root / "fan" / f"id_{i % 2:02d}" / "normal"
        folder.mkdir(parents=True, exist_ok=True)
        level = 0.5 if i % 5 == 4 else 0.05
        signal_ = np.random.default_rng(i).normal(0, level, 8000).astype(np.float32)
        path = folder / f"{i:08d}.wav"
        sf.write(path, signal_, 16000)
        paths.append(str(path))
    return sorted(paths)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path, Any]:
    """A clip folder, its sorted clips, a saved model folder and the serial scores of every clip."""
    root = tmp_path_factory.mktemp("scale")
    data = root / "data"
    paths = _write_clips(data)
    model = GaussianDetector(threshold=40.0, random_state=0).fit(paths[:8])
    folder = Path(model.save(root / "model"))
    return data, paths, folder, model.score(paths)


def _read(out: Path) -> Any:
    return pd.read_parquet(out).sort_values("path").reset_index(drop=True)


def _check_exactly_once(out: Path, paths: list[str], serial: Any) -> Any:
    table = _read(out)
    assert table["path"].tolist() == paths  # every clip, once
    assert list(table.columns) == ["path", "group", "score", "label", "status", "reason"]
    assert (table["status"] == "ok").all()
    np.testing.assert_allclose(table["score"].to_numpy(), serial, rtol=1e-9, atol=1e-9)
    return table


# -- listing ------------------------------------------------------------------------------------------------
def test_listing_is_sorted_lazy_and_globbable(site: tuple[Path, list[str], Path, Any]) -> None:
    data, paths, _, _ = site
    clips = iter_clips(data)
    assert next(clips) == paths[0]  # a generator: the first name comes before the rest is listed
    assert [paths[0], *clips] == paths
    assert list(iter_clips(f"{data}/fan/id_01/**/*.wav")) == [p for p in paths if "/id_01/" in p]
    assert list(iter_clips(f"{data}/*/id_00/normal/0000000[02].wav")) == [
        p for p in paths if p.endswith(("00.wav", "02.wav"))
    ]
    with pytest.raises(SoundAnomalyError, match="no such file"):
        list(iter_clips(data / "missing"))


# -- a local pool -------------------------------------------------------------------------------------------
def test_local_pool_equals_serial_scores_and_groups(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    data, paths, folder, serial = site
    summary = score_many(folder, data, tmp_path / "scores", jobs=2, shard_size=5)
    assert (summary.clips, summary.shards, summary.resumed, summary.scored) == (N_CLIPS, 5, 0, N_CLIPS)
    table = _check_exactly_once(tmp_path / "scores", paths, serial)
    assert set(table["group"]) == {"fan/id_00", "fan/id_01"}
    assert table["label"].tolist() == (serial > 40.0).astype(int).tolist()
    assert sorted(p.name for p in (tmp_path / "scores").glob("part-*.parquet")) == [
        f"part-{i:08d}.parquet" for i in range(5)
    ]


def test_unreadable_clip_gets_a_row_and_fails_closed(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    _, paths, folder, _ = site
    source = tmp_path / "src"
    source.mkdir()
    for path in paths[:3]:
        (source / Path(path).name).write_bytes(Path(path).read_bytes())
    (source / "zz-broken.wav").write_bytes(b"RIFF not really")
    score_many(folder, source, tmp_path / "scores", jobs=1, shard_size=2)
    table = _read(tmp_path / "scores")
    broken = table[table["path"].str.endswith("zz-broken.wav")].iloc[0]
    assert (broken["status"], broken["label"]) == ("skipped", 1) and np.isnan(broken["score"])
    assert broken["reason"]
    assert (table["status"] == "ok").sum() == 3
    with pytest.raises(SoundAnomalyError, match="zz-broken"):
        score_many(folder, source, tmp_path / "strict", jobs=1, shard_size=2, on_error="raise")


def test_interrupt_then_resume_scores_every_clip_once(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    data, paths, folder, serial = site
    out = tmp_path / "scores"
    written: list[int] = []

    def stop_after_two(shard: int, clips: int) -> None:
        written.append(shard)
        if len(written) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_many(folder, data, out, jobs=1, shard_size=4, on_shard=stop_after_two)
    assert len(list(out.glob("part-*.parquet"))) == 2
    summary = score_many(folder, data, out, jobs=2, shard_size=4)
    assert (summary.shards, summary.resumed, summary.scored) == (6, 2, N_CLIPS - 8)
    _check_exactly_once(out, paths, serial)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_killed_driver_resumes_without_duplicates(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    """SIGKILL the driver after a partition is renamed but before its manifest line: that shard is redone once."""
    data, paths, folder, serial = site
    out = tmp_path / "scores"
    script = (
        "import os, signal\n"
        "from soundanomaly.scale import score_many\n"
        "calls = []\n"
        "def hook(shard, clips):\n"
        "    calls.append(shard)\n"
        "    if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"score_many({str(folder)!r}, {str(data)!r}, {str(out)!r}, jobs=1, shard_size=6, on_shard=hook)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    # hook runs after the manifest line: simulate the worst case by dropping the last line
    manifest = (out / "_shards.jsonl").read_text().splitlines()
    assert len(manifest) == 2
    (out / "_shards.jsonl").write_text("\n".join(manifest[:-1]) + "\n")
    summary = score_many(folder, data, out, jobs=1, shard_size=6)
    assert (summary.resumed, summary.scored) == (len(manifest) - 1, N_CLIPS - 6 * (len(manifest) - 1))
    _check_exactly_once(out, paths, serial)
    lines = [json.loads(line) for line in (out / "_shards.jsonl").read_text().splitlines()]
    assert sorted(line["shard"] for line in lines) == [0, 1, 2, 3]


# -- output safety ------------------------------------------------------------------------------------------
def test_output_safety(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    data, paths, folder, _ = site
    for bad in (data / "scores", data, folder, folder / "scores", data.parent):
        with pytest.raises(OutputExistsError, match="refusing"):
            score_many(folder, data, bad, jobs=1)
    with pytest.raises(ParameterError, match="local folder"):
        score_many(folder, data, "s3://bucket/scores/", jobs=1)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not written by"):
        score_many(folder, data, foreign, jobs=1)
    assert (foreign / "mine.txt").read_text() == "keep me"
    out = tmp_path / "scores"
    score_many(folder, f"{data}/fan/id_00", out, jobs=1, shard_size=8)
    with pytest.raises(OutputExistsError, match=r"another job.*sources"):
        score_many(folder, data, out, jobs=1, shard_size=8)
    with pytest.raises(OutputExistsError, match=r"another job.*shard_size"):
        score_many(folder, f"{data}/fan/id_00", out, jobs=1, shard_size=4)
    other = GaussianDetector(threshold=1.0).fit(paths[8:16])
    with pytest.raises(OutputExistsError, match=r"another job.*model"):
        score_many(other, f"{data}/fan/id_00", out, jobs=1, shard_size=8)


def test_resume_refuses_a_changed_listing(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    _, paths, folder, _ = site
    source = tmp_path / "src"
    source.mkdir()
    for path in paths[:6]:
        (source / Path(path).name).write_bytes(Path(path).read_bytes())
    out = tmp_path / "scores"
    score_many(folder, source, out, jobs=1, shard_size=4)
    (source / "00000000.wav").unlink()
    with pytest.raises(SoundAnomalyError, match="source changed"):
        score_many(folder, source, out, jobs=1, shard_size=4)


# -- fitting: features on the executor, the model fitted here ----------------------------------------------
def test_fit_many_equals_a_local_fit(site: tuple[Path, list[str], Path, Any]) -> None:
    data, paths, _, _ = site
    local = GaussianDetector(threshold=40.0).fit(paths)
    spread = fit_many(GaussianDetector(threshold=40.0), data, jobs=2, shard_size=5)
    np.testing.assert_allclose(spread.score(paths[:4]), local.score(paths[:4]), rtol=1e-6)
    features = extract_many(local.features, data, jobs=1, shard_size=7)
    assert features.paths == tuple(paths)


# -- a real Dask cluster, clips on moto's S3 server --------------------------------------------------------
@pytest.fixture(scope="module")
def s3_cluster(site: tuple[Path, list[str], Path, Any]) -> Iterator[tuple[Any, list[str]]]:
    """moto's S3 server holding the clips, and a LocalCluster of two worker processes that reach it."""
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    distributed = pytest.importorskip("distributed")
    import boto3

    from soundanomaly.testing.aws import aws_environment

    data, paths, _, _ = site
    with aws_environment():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="plant")
        urls = []
        for path in paths:
            key = "audio/" + Path(path).relative_to(data).as_posix()
            s3.put_object(Bucket="plant", Key=key, Body=Path(path).read_bytes())
            urls.append(f"s3://plant/{key}")
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client, sorted(urls)


@pytest.mark.aws
def test_dask_cluster_on_s3_equals_serial(
    site: tuple[Path, list[str], Path, Any], s3_cluster: tuple[Any, list[str]], tmp_path: Path
) -> None:
    _, _, folder, serial = site
    client, urls = s3_cluster
    assert list(iter_clips("s3://plant/audio/")) == urls
    summary = score_many(folder, "s3://plant/audio/", tmp_path / "scores", client=client, shard_size=3)
    assert (summary.clips, summary.shards) == (N_CLIPS, 8)
    table = _check_exactly_once(tmp_path / "scores", urls, serial)
    assert table["group"].tolist()[:2] == ["fan/id_00", "fan/id_00"]


@pytest.mark.aws
def test_dask_job_survives_a_killed_worker(
    site: tuple[Path, list[str], Path, Any], s3_cluster: tuple[Any, list[str]], tmp_path: Path
) -> None:
    _, _, folder, serial = site
    client, urls = s3_cluster
    pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_one(shard: int, clips: int) -> None:
        if not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    summary = score_many(
        folder, "s3://plant/audio/", tmp_path / "scores", client=client, shard_size=2, on_shard=kill_one
    )
    assert killed and summary.scored == N_CLIPS
    _check_exactly_once(tmp_path / "scores", urls, serial)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker for the next test


def test_import_scale_is_light() -> None:
    code = "import sys, soundanomaly.scale; print([m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- the command line ---------------------------------------------------------------------------------------
def test_cli_out_jobs_and_resume(
    site: tuple[Path, list[str], Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly.cli import main

    data, paths, folder, serial = site
    out = tmp_path / "scores"
    argv = ["score", str(folder), str(data), "--out", str(out), "--jobs", "2", "--shard-size", "5", "-q"]
    assert main(argv) == 0
    _check_exactly_once(out, paths, serial)
    assert main(argv) == 0  # a rerun of a complete job resumes every shard and scores nothing
    _check_exactly_once(out, paths, serial)
    capsys.readouterr()
    assert main(["score", str(folder), str(data), "--out", str(data / "scores"), "-q"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("soundanomaly: error:") and "refusing" in error and error.count("\n") == 1
    assert main(["score", str(folder), str(data), "--scheduler", "tcp://127.0.0.1:1", "-q"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_cli_csv_with_jobs_equals_serial(
    site: tuple[Path, list[str], Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly.cli import main

    data, paths, folder, _ = site
    assert main(["score", str(folder), str(data), "--csv", str(tmp_path / "serial.csv"), "--jobs", "1", "-q"]) == 0
    assert main(["score", str(folder), str(data), "--csv", str(tmp_path / "pool.csv"), "--jobs", "2", "-q"]) == 0
    one, two = pd.read_csv(tmp_path / "serial.csv"), pd.read_csv(tmp_path / "pool.csv")
    assert one["path"].tolist() == two["path"].tolist() == paths
    assert one["label"].tolist() == two["label"].tolist()
    np.testing.assert_allclose(two["score"].to_numpy(), one["score"].to_numpy(), rtol=1e-5)


@pytest.mark.aws
def test_cli_scheduler_scores_an_s3_prefix(
    site: tuple[Path, list[str], Path, Any], s3_cluster: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from soundanomaly.cli import main

    _, _, folder, serial = site
    client, urls = s3_cluster
    out = tmp_path / "scores"
    address = client.scheduler.address
    assert main(["score", str(folder), "s3://plant/audio/", "--scheduler", address, "--out", str(out), "-q"]) == 0
    _check_exactly_once(out, urls, serial)


def test_cli_evaluate_with_jobs_equals_serial(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly.cli import main
    from soundanomaly.datasets import MIMII

    clips = MIMII(tiny_root)
    normal = [p for p, r in zip(clips.paths, clips, strict=True) if r.label == "normal"][:6]
    folder = GaussianDetector(threshold=40.0).fit(normal).save(tmp_path / "model")
    reports = []
    for jobs in ("1", "2"):
        assert main(["evaluate", str(folder), str(tiny_root), "--jobs", jobs, "-q"]) == 0
        reports.append(capsys.readouterr().out)
    assert reports[0] == reports[1] and "AUC" in reports[0]


def test_cli_train_with_jobs_equals_serial(tiny_root: Path, tmp_path: Path) -> None:
    from soundanomaly.cli import main
    from soundanomaly.detectors import load_model

    thresholds = []
    for jobs in ("1", "2"):
        out = tmp_path / f"model-{jobs}"
        assert main(["train", str(tiny_root), "--out", str(out), "--detector", "gaussian", "--jobs", jobs, "-q"]) == 0
        model = load_model(out)
        assert model.n_jobs == 1  # --jobs is not saved with the model
        thresholds.append(model.threshold_)
    assert thresholds[0] == pytest.approx(thresholds[1], rel=1e-6)


def test_any_executor_and_a_killed_local_worker(site: tuple[Path, list[str], Path, Any], tmp_path: Path) -> None:
    """A caller's own executor (the model goes by path); a local pool that loses a process is rebuilt."""
    from concurrent.futures import ProcessPoolExecutor

    import psutil

    data, paths, folder, serial = site
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = score_clips(folder, paths, executor=pool, shard_size=5)
    assert [row.path for row in rows] == paths
    np.testing.assert_allclose([row.score for row in rows], serial, rtol=1e-9)

    killed: list[int] = []

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}

    def kill_a_worker(shard: int, clips: int) -> None:
        new = []
        for child in me.children(recursive=True):
            try:  # the pool's processes, not multiprocessing's resource tracker (nor a finished process)
                if child.pid not in before and not any("resource_tracker" in part for part in child.cmdline()):
                    new.append((child, child.ppid()))
            except psutil.Error:
                continue
        # the pool's workers: children of a forkserver when TensorFlow is loaded, else our own children
        workers = [child for child, parent in new if parent != me.pid] or [child for child, _ in new]
        if not killed and workers:
            killed.append(workers[0].pid)
            workers[0].kill()

    out = tmp_path / "scores"
    summary = score_many(folder, data, out, jobs=2, shard_size=2, on_shard=kill_a_worker)
    assert killed and summary.scored == N_CLIPS
    _check_exactly_once(out, paths, serial)
