"""Amazon SageMaker backend: training jobs, real-time endpoints and batch transform.

Endpoints and batch transform live in :mod:`soundanomaly.backends.sagemaker_serving` (inherited by
:class:`SageMakerBackend`); this module re-exports their public names.

Training uses the SageMaker Python SDK v3 (:class:`sagemaker.train.ModelTrainer`)
with the TensorFlow training container and the entry script shipped in this
package (:mod:`soundanomaly.backends.sagemaker_entry`), staged together with
:mod:`soundanomaly.backends.local` so the container builds the same model as a
local fit. Endpoints and batch transform use boto3 directly: each paid
resource is created and deleted by this module in one ``try/finally``, so
nothing is left running (the SDK's ``ModelBuilder`` manages resources of its
own that we could not guarantee to clean up the same way).

Every cloud call goes through botocore's adaptive retry mode; a throttled
call that still fails after the retries raises :class:`ThrottlingError`,
other service errors :class:`BackendError`, both chained ``from`` the
original error.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly.backends._aws import aws_call as _call
from soundanomaly.backends.local import TrainResult
from soundanomaly.backends.sagemaker_serving import (
    ENDPOINT_INSTANCE,
    MAX_PAYLOAD_BYTES,
    TRANSFORM_INSTANCE,
    TRANSFORM_RECORD_BYTES,
    SageMakerEndpoint,
    SageMakerServing,
    log_status,
    pack_requests,
)
from soundanomaly.exceptions import BackendError, BackendTimeoutError, JobFailedError, ParameterError
from soundanomaly.typing import FloatArray

__all__ = [
    "ENDPOINT_INSTANCE",
    "HOURLY_USD",
    "MAX_PAYLOAD_BYTES",
    "TRAINING_INSTANCE",
    "TRANSFORM_INSTANCE",
    "TRANSFORM_RECORD_BYTES",
    "SageMakerBackend",
    "SageMakerEndpoint",
    "pack_requests",
]

TRAINING_INSTANCE = "ml.p3.2xlarge"
FRAMEWORK_VERSION = "2.16"
#: Approximate on-demand list prices per instance-hour of the defaults (us-east-1, USD, late 2025;
#: check the SageMaker pricing page for your region): training, real-time endpoint, batch transform.
HOURLY_USD = {"ml.p3.2xlarge": 3.825, "ml.c5.large": 0.119, "ml.c5.xlarge": 0.238}
_SHARD_ROWS = 100_000  # 128 MB of float32 320-wide windows per .npy shard
#: Modules staged into the training container (they must import on the image's Python, see _stage_source).
_STAGED = ("backends/local.py",)
_STUB_INIT = '"""soundanomaly, staged for a SageMaker training container (only backends.local)."""\n'


class SageMakerBackend(SageMakerServing):
    """Train the autoencoder on SageMaker; score through an endpoint or batch transform.

    Parameters
    ----------
    role : str
        ARN of the IAM role SageMaker assumes (needs S3 access to ``bucket``).
    bucket : str
        S3 bucket for features, code, model artifacts and transform data.
    prefix : str, default "soundanomaly"
        Key prefix inside ``bucket``.
    boto_session : boto3.Session, optional
        Credentials and region (default: a new session). To point every call
        at another endpoint (a proxy, a local stand-in) use botocore's
        standard ``AWS_ENDPOINT_URL`` setting.
    region : str, optional
        Used when no ``boto_session`` is given.
    instance_type : str, default "ml.p3.2xlarge"
        Training instance (1 x V100, about $3.83 per hour on demand in
        us-east-1, see :data:`HOURLY_USD`).
    instance_count : int, default 1
        Must be 1: the training script is not distributed, so more
        instances would train identical copies and bill each of them.
    use_spot : bool, default False
        Managed spot training (up to ~70% cheaper; may be interrupted and
        resumed from checkpoints).
    max_runtime_seconds : int, default 3600
        SageMaker stops the job after this long.
    max_wait_seconds : int, optional
        Spot only: total time including waiting for capacity
        (default ``2 * max_runtime_seconds``).
    checkpoint_s3_uri : str, optional
        Spot checkpoints: each job gets its own folder ``<run id>/`` below
        this prefix (default ``s3://bucket/prefix/checkpoints/``), so no job
        resumes from another's checkpoint.
    output_path : str, optional
        Where model artifacts go (default ``s3://bucket/prefix/output``).
    tags : dict of str to str, optional
        Tags on every resource created.
    training_image, inference_image : str, optional
        Container images (default: the SDK's TensorFlow image URIs for
        ``framework_version``).
    framework_version : str, default "2.16"
    train_data : str, optional
        An S3 prefix that already holds the ``shard-*.npy`` training windows:
        used as is instead of uploading.
    poll_seconds : float, default 15
    timeout_seconds : float, optional
        Give up waiting for a job after this long (the job is stopped).
    progress : bool, default True
        Status messages on stderr.

    Examples
    --------
    >>> backend = SageMakerBackend(role="arn:aws:iam::111122223333:role/sagemaker", bucket="my-bucket")
    >>> backend.instance_type, backend.output_path
    ('ml.p3.2xlarge', 's3://my-bucket/soundanomaly/output')
    >>> detector = AutoencoderDetector(backend=backend).fit(split.train)  # a paid training job  # doctest: +SKIP

    """

    name = "sagemaker"

    def __init__(
        self,
        *,
        role: str,
        bucket: str,
        prefix: str = "soundanomaly",
        boto_session: Any = None,
        region: str | None = None,
        instance_type: str = TRAINING_INSTANCE,
        instance_count: int = 1,
        use_spot: bool = False,
        max_runtime_seconds: int = 3600,
        max_wait_seconds: int | None = None,
        checkpoint_s3_uri: str | None = None,
        output_path: str | None = None,
        tags: dict[str, str] | None = None,
        training_image: str | None = None,
        inference_image: str | None = None,
        framework_version: str = FRAMEWORK_VERSION,
        train_data: str | None = None,
        poll_seconds: float = 15.0,
        timeout_seconds: float | None = None,
        progress: bool = True,
    ) -> None:
        if not (isinstance(role, str) and role.startswith("arn:") and ":role/" in role):
            raise ParameterError(f"role must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {role!r}")
        if not bucket or "/" in bucket:
            raise ParameterError(f"bucket must be a bucket name without slashes, got {bucket!r}")
        if instance_count != 1:
            # The entry script is not distributed: N instances would train N identical copies, billed N times.
            raise ParameterError(f"instance_count must be 1 (training is not distributed), got {instance_count!r}")
        if max_wait_seconds is not None and not use_spot:
            raise ParameterError("max_wait_seconds applies to managed spot training only; set use_spot=True")
        if use_spot and max_wait_seconds is not None and max_wait_seconds < max_runtime_seconds:
            raise ParameterError("max_wait_seconds must be >= max_runtime_seconds")
        if train_data is not None and not train_data.startswith("s3://"):
            raise ParameterError(f"train_data must be an s3:// prefix, got {train_data!r}")
        self.role = role
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.use_spot = use_spot
        self.max_runtime_seconds = max_runtime_seconds
        self.max_wait_seconds = max_wait_seconds or (2 * max_runtime_seconds if use_spot else None)
        if checkpoint_s3_uri is not None and not checkpoint_s3_uri.startswith("s3://"):
            raise ParameterError(f"checkpoint_s3_uri must be an s3:// prefix, got {checkpoint_s3_uri!r}")
        self.checkpoint_s3_uri = checkpoint_s3_uri or (
            f"s3://{bucket}/{self.prefix}/checkpoints/" if use_spot else None
        )
        self.output_path = output_path or f"s3://{bucket}/{self.prefix}/output"
        self.tags = dict(tags or {})
        self.framework_version = framework_version
        self.train_data = train_data
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.progress = progress
        self._boto_session = boto_session
        self._training_image = training_image
        self._inference_image = inference_image
        self._clients: dict[str, Any] = {}
        self.last_job_name: str | None = None
        self.last_checkpoint_uri: str | None = None
        self.last_transform_job_name: str | None = None
        self._clip_folder: tempfile.TemporaryDirectory[str] | None = None

    # -- clients ------------------------------------------------------------------------------
    @property
    def boto_session(self) -> Any:
        """The boto3 session every client comes from."""
        if self._boto_session is None:
            import boto3

            self._boto_session = boto3.Session(region_name=self.region)
        return self._boto_session

    @property
    def region_name(self) -> str:
        """The session's region; :class:`ParameterError` when none is configured."""
        region = self.boto_session.region_name
        if not region:
            raise ParameterError(
                "no AWS region: pass region= or a boto_session with a region, or set AWS_DEFAULT_REGION"
            )
        return str(region)

    def client(self, service: str) -> Any:
        """A cached boto3 client with adaptive retries (handles throttling)."""
        if service not in self._clients:
            self.region_name  # noqa: B018 - fail with a clear message before botocore's NoRegionError
            from botocore.config import Config

            config = Config(retries={"mode": "adaptive", "max_attempts": 8})
            self._clients[service] = self.boto_session.client(service, config=config)
        return self._clients[service]

    def py_version(self) -> str:
        """The training image's Python (``"py310"`` for TF 2.16), from the SDK's image config."""
        from sagemaker.core import image_uris

        config = image_uris.config_for_framework("tensorflow")["training"]
        version = config.get("version_aliases", {}).get(self.framework_version, self.framework_version)
        if version not in config["versions"]:
            known = ", ".join(sorted(config.get("version_aliases", {})))
            raise ParameterError(f"framework_version {self.framework_version!r} has no training image; known: {known}")
        py_versions = config["versions"][version].get("py_versions") or []
        if not py_versions:  # pragma: no cover - every TF 2 entry lists one
            raise BackendError(f"the SageMaker SDK lists no Python for TensorFlow {version}")
        return str(py_versions[-1])

    def _image(self, scope: str, instance_type: str | None = None) -> str:
        explicit = self._training_image if scope == "training" else self._inference_image
        if explicit:
            return explicit
        from sagemaker.core import image_uris

        instance = instance_type or (self.instance_type if scope == "training" else ENDPOINT_INSTANCE)
        try:
            return str(
                image_uris.retrieve(
                    "tensorflow",
                    region=self.region_name,
                    version=self.framework_version,
                    instance_type=instance,
                    image_scope=scope,
                    py_version=self.py_version() if scope == "training" else None,
                )
            )
        except ValueError as exc:
            raise ParameterError(f"no TensorFlow {scope} image for {instance} in {self.region_name}: {exc}") from exc

    def _tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]

    # -- data -------------------------------------------------------------------------------------
    def upload_features(self, windows: FloatArray) -> str:
        """Upload feature windows as ``shard-NNNNN.npy`` files; return the S3 prefix.

        The prefix can be reused later with ``train_data=``.
        """
        key_prefix = f"{self.prefix}/data/{uuid.uuid4().hex[:12]}/train"
        s3 = self.client("s3")
        for number, start in enumerate(range(0, len(windows), _SHARD_ROWS)):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(windows[start : start + _SHARD_ROWS], dtype=np.float32))
            buffer.seek(0)
            key = f"{key_prefix}/shard-{number:05d}.npy"
            _call(f"uploading s3://{self.bucket}/{key}", s3.upload_fileobj, buffer, self.bucket, key)
        uri = f"s3://{self.bucket}/{key_prefix}/"
        log_status(f"uploaded {len(windows)} windows to {uri}", self.progress)
        return uri

    def list_clips(self, prefix: str, *, suffix: str = ".wav", download: bool = True) -> list[str]:
        """The clips under an S3 prefix, in key order: local copies, or ``s3://`` URLs.

        With ``download=True`` (what :meth:`AutoencoderDetector.batch_score
        <soundanomaly.detectors.AutoencoderDetector.batch_score>` uses) each clip
        is fetched with this backend's own boto3 session (its profile, role
        or region, not s3fs's default credentials) into a temporary folder,
        kept until the next call or until the backend is garbage-collected,
        and the local paths are returned.
        """
        bucket, key_prefix = _split_s3(prefix)
        s3 = self.client("s3")
        paginator = s3.get_paginator("list_objects_v2")
        keys = []
        for page in _call(f"listing {prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=key_prefix))):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)]
        if not keys:
            raise ParameterError(f"no {suffix} files under {prefix}")
        keys.sort()
        if not download:
            return [f"s3://{bucket}/{key}" for key in keys]
        if self._clip_folder is not None:
            self._clip_folder.cleanup()
        self._clip_folder = tempfile.TemporaryDirectory(prefix="soundanomaly-clips-")
        paths = []
        for key in keys:
            target = Path(self._clip_folder.name) / bucket / key
            target.parent.mkdir(parents=True, exist_ok=True)
            _call(f"downloading s3://{bucket}/{key}", s3.download_file, bucket, key, str(target))
            paths.append(str(target))
        log_status(f"downloaded {len(paths)} clips from {prefix}", self.progress)
        return paths

    # -- training ---------------------------------------------------------------------------------
    def train(
        self,
        windows: FloatArray,
        *,
        hidden: tuple[int, ...],
        epochs: int,
        batch_size: int,
        learning_rate: float,
        validation_split: float,
        early_stopping: int | None,
        seed: int | None,
        verbose: int = 0,
        initial_weights: list[FloatArray] | None = None,
        feature_params: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Run a training job on ``windows`` and return the trained weights.

        Same signature and result as :meth:`LocalBackend.train`; the result's
        ``model_data`` is the S3 URI of ``model.tar.gz`` (for endpoints).
        """
        if initial_weights is not None:
            raise ParameterError("the SageMaker backend does not continue training from given weights")
        data_uri = self.train_data or self.upload_features(windows)
        params: dict[str, Any] = dict(feature_params or {})
        n_mels: int = params["n_mels"] if "n_mels" in params else int(windows.shape[1])
        frames = int(params.get("frames", 1))
        hyperparameters = {
            "epochs": epochs,
            "batch-size": batch_size,
            "learning-rate": learning_rate,
            "validation-split": validation_split,
            "early-stopping": early_stopping or 0,
            "seed": 0 if seed is None else seed,
            "hidden": json.dumps(list(hidden)),
            "n_mels": n_mels,
            "frames": frames,
        }
        hyperparameters["fingerprint"] = run_fingerprint(data_uri, hyperparameters)
        job_name = self.start_training(data_uri, hyperparameters)
        try:
            self.wait_for_training(job_name)
        except BaseException:
            self._stop_training_if_running(job_name)
            raise
        return self.fetch_result(job_name)

    def start_training(self, data_uri: str, hyperparameters: dict[str, Any]) -> str:
        """Submit the training job (does not wait); return its name.

        With spot training the job's checkpoints go to a folder of their own,
        ``<checkpoint_s3_uri>/<run id>/`` (:attr:`last_checkpoint_uri`).
        """
        from sagemaker.core.helper.session_helper import Session
        from sagemaker.core.training.configs import (
            CheckpointConfig,
            Compute,
            InputData,
            OutputDataConfig,
            SourceCode,
            StoppingCondition,
            Tag,
        )
        from sagemaker.train import ModelTrainer

        region = self.region_name
        image = self._image("training")
        session = Session(boto_session=self.boto_session, default_bucket=self.bucket, default_bucket_prefix=self.prefix)
        stopping = {"max_runtime_in_seconds": self.max_runtime_seconds}
        if self.use_spot and self.max_wait_seconds:
            stopping["max_wait_time_in_seconds"] = self.max_wait_seconds
        checkpoint_uri = None
        if self.checkpoint_s3_uri:
            checkpoint_uri = f"{self.checkpoint_s3_uri.rstrip('/')}/{uuid.uuid4().hex[:12]}/"
        self.last_checkpoint_uri = checkpoint_uri
        with tempfile.TemporaryDirectory(prefix="soundanomaly-code-") as code_dir:
            _stage_source(Path(code_dir))
            trainer = _call(
                f"preparing the training job in {region} (the SDK checks the execution role)",
                _model_trainer,
                ModelTrainer,
                sagemaker_session=session,
                role=self.role,
                base_job_name="soundanomaly-autoencoder",
                training_image=image,
                source_code=SourceCode(source_dir=code_dir, entry_script="train.py"),
                compute=Compute(
                    instance_type=self.instance_type,
                    instance_count=self.instance_count,
                    enable_managed_spot_training=self.use_spot or None,
                ),
                stopping_condition=StoppingCondition(**stopping),
                output_data_config=OutputDataConfig(s3_output_path=self.output_path),
                checkpoint_config=CheckpointConfig(s3_uri=checkpoint_uri, local_path="/opt/ml/checkpoints")
                if checkpoint_uri
                else None,
                hyperparameters=hyperparameters,
                tags=[Tag(key=k, value=v) for k, v in sorted(self.tags.items())] or None,
            )
            _call(
                "creating the training job",
                trainer.train,
                input_data_config=[InputData(channel_name="train", data_source=data_uri)],
                wait=False,
                logs=False,
            )
        job = trainer._latest_training_job
        if job is None:  # pragma: no cover - the SDK always sets it after a create
            raise BackendError("SageMaker SDK returned no training job")
        self.last_job_name = str(job.training_job_name)
        log_status(
            f"training job {self.last_job_name} submitted ({self.instance_type} x {self.instance_count})", self.progress
        )
        return self.last_job_name

    def wait_for_training(self, job_name: str) -> dict[str, Any]:
        """Poll until the job ends; raise :class:`JobFailedError` with its FailureReason on failure.

        On timeout the job is stopped before :class:`BackendTimeoutError` is raised.
        """
        sm = self.client("sagemaker")

        def describe() -> dict[str, Any]:
            return dict(_call(f"describing {job_name}", sm.describe_training_job, TrainingJobName=job_name))

        try:
            return self._poll(job_name, describe, "TrainingJobStatus", "Completed", self.timeout_seconds)
        except BackendTimeoutError as exc:
            self._stop_training_if_running(job_name)
            raise BackendTimeoutError(f"{exc}; job stopped") from exc

    def _stop_training_if_running(self, job_name: str) -> None:
        """Stop a job that is still running; say so loudly if that fails (it costs money)."""
        sm = self.client("sagemaker")
        try:
            status = _call("describing", sm.describe_training_job, TrainingJobName=job_name)["TrainingJobStatus"]
            if status == "InProgress":
                _call(f"stopping {job_name}", sm.stop_training_job, TrainingJobName=job_name)
                log_status(f"stopped {job_name}", self.progress)
        except BackendError as exc:
            print(f"[sagemaker] WARNING: could not stop {job_name}, stop it by hand: {exc}", file=sys.stderr)

    def fetch_result(self, job_name: str) -> TrainResult:
        """Download the job's ``model.tar.gz`` and read weights and history from it."""
        job = _call(f"describing {job_name}", self.client("sagemaker").describe_training_job, TrainingJobName=job_name)
        uri = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if not uri:
            raise BackendError(f"{job_name}: no model artifacts recorded")
        bucket, key = _split_s3(uri)
        body = _call(f"downloading {uri}", self.client("s3").get_object, Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            members = {m.name.lstrip("./"): m for m in archive.getmembers()}
            if "weights.npz" not in members:
                raise BackendError(f"{uri}: no weights.npz inside (was it written by soundanomaly's entry script?)")
            weights_file = archive.extractfile(members["weights.npz"])
            history_file = archive.extractfile(members["history.json"]) if "history.json" in members else None
            assert weights_file is not None
            with np.load(io.BytesIO(weights_file.read())) as data:
                weights = [data[f"w{i}"].astype(np.float32) for i in range(len(data.files))]
            history = json.loads(history_file.read()) if history_file is not None else {}
        return TrainResult(weights, history, model_data=uri)

    def _poll(
        self,
        what: str,
        describe: Callable[[], dict[str, Any]],
        status_key: str,
        done: str,
        timeout_seconds: float | None,
    ) -> dict[str, Any]:
        """Describe until ``status_key`` is ``done``; raise with FailureReason on Failed/Stopped, or on timeout."""
        start = time.monotonic()
        last = ""
        while True:
            description = describe()
            status = description[status_key]
            state = " / ".join(filter(None, [status, description.get("SecondaryStatus")]))
            if state != last:
                log_status(f"{what}: {state} ({time.monotonic() - start:.0f} s)", self.progress)
                last = state
            if status == done:
                return description
            if status in ("Failed", "Stopped"):
                raise JobFailedError(what, description.get("FailureReason") or f"{status.lower()}")
            if timeout_seconds is not None and time.monotonic() - start > timeout_seconds:
                raise BackendTimeoutError(f"{what} still {status} after {timeout_seconds:.0f} s")
            time.sleep(self.poll_seconds)


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise BackendError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _stage_source(code_dir: Path) -> None:
    """Stage the entry script as ``train.py`` and the modules it imports under ``soundanomaly/``.

    Only :mod:`soundanomaly.backends.local` is copied; the package
    ``__init__`` files are one-line stubs, so nothing else of soundanomaly (nor
    its newer-Python typing) reaches the container, whose Python is the
    image's (3.10 for TF 2.16).
    """
    package = Path(__file__).resolve().parents[1]
    shutil.copy(package / "backends" / "sagemaker_entry.py", code_dir / "train.py")
    for init in ("soundanomaly/__init__.py", "soundanomaly/backends/__init__.py"):
        (code_dir / init).parent.mkdir(parents=True, exist_ok=True)
        (code_dir / init).write_text(_STUB_INIT)
    for relative in _STAGED:
        shutil.copy(package / relative, code_dir / "soundanomaly" / relative)


def run_fingerprint(data_uri: str, hyperparameters: dict[str, Any]) -> str:
    """A short hash of the training data URI and hyperparameters, stored with every checkpoint.

    Examples
    --------
    >>> run_fingerprint("s3://b/data/", {"epochs": 2}) == run_fingerprint("s3://b/data/", {"epochs": 2})
    True
    >>> run_fingerprint("s3://b/data/", {"epochs": 2}) == run_fingerprint("s3://b/data/", {"epochs": 3})
    False
    """
    payload = json.dumps({"data": data_uri, **{k: str(v) for k, v in hyperparameters.items()}}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _model_trainer(cls: Any, **kwargs: Any) -> Any:
    """Build a ``ModelTrainer``, mapping the SDK's role and parameter checks to :class:`BackendError`."""
    try:
        return cls(**kwargs)
    except ValueError as exc:  # pydantic validation, unknown role name
        raise BackendError(f"the SageMaker SDK refused the training job: {exc}", code="ValidationError") from exc
    except Exception as exc:
        if type(exc).__name__ != "RoleValidationError":
            raise
        raise BackendError(
            f"the execution role was refused by the SageMaker SDK's check (see the IAM section of the AWS docs page): "
            f"{exc}",
            code="RoleValidationError",
        ) from exc
