"""moto-backed AWS stand-ins and the container work moto does not do."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly.typing import FloatArray

__all__ = [
    "aws_environment",
    "container_python",
    "play_training_job",
    "play_transform_job",
    "queue_endpoint_results",
    "run_training_script",
]

_ENV_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "SAGEMAKER_VALIDATE_ROLE",
)


@contextlib.contextmanager
def aws_environment(region: str = "us-east-1") -> Iterator[str]:
    """Run moto's server on 127.0.0.1 and point every boto3 client at it.

    Sets ``AWS_ENDPOINT_URL`` (botocore's standard override), dummy
    credentials, the region, and ``SAGEMAKER_VALIDATE_ROLE=false`` (the
    SageMaker SDK's own switch: its role check calls IAM's
    SimulatePrincipalPolicy, which moto does not implement). moto keeps its
    state per process, so it is reset on entry and on exit: every
    environment starts empty. Restores the environment variables and stops
    the server on exit. Yields the server URL.

    Examples
    --------
    >>> import boto3
    >>> with aws_environment() as url:
    ...     _ = boto3.client("s3").create_bucket(Bucket="demo")
    ...     [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    ['demo']

    """
    from moto.server import ThreadedMotoServer

    # moto logs a traceback for each operation it lacks; the SageMaker SDK probes
    # iam:SimulatePrincipalPolicy and handles the failure, so keep that out of the output.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=region,
        SAGEMAKER_VALIDATE_ROLE="false",
    )
    _reset_moto(url)
    try:
        yield url
    finally:
        _reset_moto(url)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def queue_endpoint_results(url: str, bodies: Sequence[str | bytes], *, content_type: str = "application/json") -> None:
    """Tell moto's server what its next endpoint invocations return, in order.

    Examples
    --------
    >>> with aws_environment() as url:  # doctest: +SKIP
    ...     queue_endpoint_results(url, ['{"predictions": [[0.0, 1.0]]}'])

    """
    results = [{"Body": b.decode() if isinstance(b, bytes) else b, "ContentType": content_type} for b in bodies]
    request = urllib.request.Request(
        f"{url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _s3(session: Any) -> Any:
    import boto3

    return (session or boto3.Session()).client("s3")


def _download_prefix(s3: Any, uri: str, target: Path) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    target.mkdir(parents=True, exist_ok=True)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(destination))


def container_python(py_version: str = "py310") -> str | None:
    """A Python interpreter prepared like the SageMaker training image, or None.

    Looks at ``$SOUNDANOMALY_CONTAINER_PYTHON``, then at ``.nox/container-image``
    (built by ``nox -s container``: the image's Python with its pinned
    TensorFlow and Keras). Returns None when neither exists or its Python
    is not ``py_version``.

    Examples
    --------
    >>> container_python("py999") is None
    True
    """
    candidates = [os.environ.get("SOUNDANOMALY_CONTAINER_PYTHON", "")]
    root = Path(__file__).resolve().parents[3]
    candidates.append(str(root / ".nox" / "container-image" / "bin" / "python"))
    wanted = f"{py_version[2]}.{py_version[3:]}" if py_version.startswith("py") else py_version
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        try:
            found = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found == wanted:
            return candidate
    return None


def run_training_script(
    code_dir: Path,
    *,
    train_dir: Path,
    model_dir: Path,
    checkpoint_dir: Path | None,
    hyperparameters: dict[str, Any],
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """Run a staged ``train.py`` the way the SageMaker training toolkit does.

    ``SM_CHANNEL_TRAIN``, ``SM_MODEL_DIR``, ``SM_HPS`` and
    ``SM_CHECKPOINT_DIR`` are set, hyperparameters are passed as ``--key
    value`` flags, the working directory is the code folder and
    ``PYTHONPATH`` holds only the staged copy (never the installed
    package). ``python`` should be the image's interpreter (see
    :func:`container_python`). Returns the finished process (not checked).

    Examples
    --------
    >>> from soundanomaly.backends.sagemaker import _stage_source
    >>> _stage_source(code := Path(tempfile.mkdtemp()))  # exactly what SageMakerBackend uploads
    >>> result = run_training_script(code, train_dir=data, model_dir=out, checkpoint_dir=None,  # doctest: +SKIP
    ...                              hyperparameters={"epochs": 1}, python=container_python("py310"))
    """
    args = [item for key, value in hyperparameters.items() for item in (f"--{key}", str(value))]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "SM_"))}
    env.update(
        SM_CHANNEL_TRAIN=str(train_dir),
        SM_MODEL_DIR=str(model_dir),
        SM_HPS=json.dumps({k: str(v) for k, v in hyperparameters.items()}),
        SM_CHECKPOINT_DIR=str(checkpoint_dir) if checkpoint_dir is not None else "/nonexistent/checkpoints",
        PYTHONPATH=str(code_dir),
        PYTHONNOUSERSITE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return subprocess.run(
        [python, str(code_dir / "train.py"), *args], env=env, cwd=code_dir, capture_output=True, text=True
    )


def play_training_job(
    job_name: str,
    *,
    boto_session: Any = None,
    python: str = sys.executable,
) -> str:
    """Do what the training container would have done for ``job_name``.

    Downloads every input channel (training data, the staged code, the SDK's
    drivers) the way SageMaker lays them out under ``/opt/ml/input/data``,
    runs the staged entry script with the ``SM_*`` environment and the job's
    hyperparameters as flags (:func:`run_training_script`), and uploads
    ``model.tar.gz`` to the S3 URI the job reports. With a
    ``CheckpointConfig``, the job's checkpoint S3 prefix is synced down
    before and up after the run, as SageMaker does. Returns the script's
    output. Raises ``RuntimeError`` if the script fails.

    Examples
    --------
    >>> class Backend(SageMakerBackend):  # doctest: +SKIP
    ...     def wait_for_training(self, job_name):
    ...         play_training_job(job_name)          # do the container's work locally
    ...         return super().wait_for_training(job_name)

    """
    import boto3

    session = boto_session or boto3.Session()
    sm, s3 = session.client("sagemaker"), session.client("s3")
    job = sm.describe_training_job(TrainingJobName=job_name)
    with tempfile.TemporaryDirectory(prefix="sm-container-") as root_name:
        root = Path(root_name)
        channels = {}
        for channel in job.get("InputDataConfig", []):
            name = channel["ChannelName"]
            channels[name] = root / "input" / "data" / name
            _download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], channels[name])
        code = channels.get("code")
        if code is None or not (code / "train.py").is_file():
            raise RuntimeError(f"{job_name}: no staged train.py in the 'code' channel")
        model_dir = root / "model"
        checkpoint_uri = job.get("CheckpointConfig", {}).get("S3Uri")
        checkpoints = root / "checkpoints"
        if checkpoint_uri:
            _download_prefix(s3, checkpoint_uri, checkpoints)  # SageMaker restores the prefix into the job
        result = run_training_script(
            code,
            train_dir=channels["train"],
            model_dir=model_dir,
            checkpoint_dir=checkpoints,
            hyperparameters=job.get("HyperParameters", {}),
            python=python,
        )
        if checkpoint_uri:
            _upload_folder(s3, checkpoints, checkpoint_uri)
        if result.returncode != 0:
            raise RuntimeError(f"{job_name}: entry script failed:\n{result.stdout}\n{result.stderr}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(model_dir.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
        bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        return result.stdout + result.stderr


def _upload_folder(s3: Any, folder: Path, uri: str) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}")


def play_transform_job(
    job_name: str, reconstruct: Callable[[FloatArray], FloatArray], *, boto_session: Any = None
) -> int:
    """Do a TF Serving batch transform container's work: one output line per JSON input line.

    ``reconstruct`` maps a ``(n, d)`` array to the model's output. Returns the
    number of records processed. As SageMaker does, a record larger than
    the job's ``MaxPayloadInMB`` fails the job (``RuntimeError`` here).

    Examples
    --------
    >>> play_transform_job(job_name, detector.reconstruct)  # doctest: +SKIP
    12

    """
    import boto3

    session = boto_session or boto3.Session()
    sm, s3 = session.client("sagemaker"), session.client("s3")
    job = sm.describe_transform_job(TransformJobName=job_name)
    in_bucket, _, in_prefix = job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"][5:].partition("/")
    out_bucket, _, out_prefix = job["TransformOutput"]["S3OutputPath"][5:].partition("/")
    records = 0
    limit = int(job.get("MaxPayloadInMB", 6)) * 1024 * 1024
    for item in s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix).get("Contents", []):
        body = s3.get_object(Bucket=in_bucket, Key=item["Key"])["Body"].read().decode()
        lines = []
        for line in body.splitlines():
            if len(line.encode()) > limit:
                raise RuntimeError(
                    f"{job_name}: a record of {len(line.encode())} bytes in {item['Key']} exceeds "
                    f"MaxPayloadInMB={job.get('MaxPayloadInMB', 6)}: ClientError: 413 payload too large"
                )
            if line.strip():
                instances = np.asarray(json.loads(line)["instances"], dtype=np.float32)
                lines.append(json.dumps({"predictions": np.asarray(reconstruct(instances)).tolist()}))
                records += 1
        key = f"{out_prefix.rstrip('/')}/{Path(item['Key']).name}.out"
        s3.put_object(Bucket=out_bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    return records
