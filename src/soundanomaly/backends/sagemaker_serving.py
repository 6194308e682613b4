"""Serving a SageMaker-trained autoencoder: real-time endpoints and batch transform.

:class:`SageMakerServing` holds the paid serving resources' life cycle (model, endpoint config, endpoint,
transform job): each one is created and deleted here in one ``try/finally``, so nothing is left running.
:class:`~soundanomaly.backends.sagemaker.SageMakerBackend` inherits it and supplies the clients, tags and the
polling loop; import everything from :mod:`soundanomaly.backends.sagemaker`, which re-exports the public names.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from soundanomaly.backends._aws import aws_call as _call
from soundanomaly.exceptions import BackendError, ParameterError
from soundanomaly.typing import FloatArray

__all__ = [
    "ENDPOINT_INSTANCE",
    "MAX_PAYLOAD_BYTES",
    "TRANSFORM_INSTANCE",
    "TRANSFORM_RECORD_BYTES",
    "SageMakerEndpoint",
    "SageMakerServing",
    "check_windows",
    "log_status",
    "pack_requests",
]

ENDPOINT_INSTANCE = "ml.c5.large"
TRANSFORM_INSTANCE = "ml.c5.xlarge"
#: SageMaker's real-time invocation payload limit.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Largest batch transform record soundanomaly writes; long clips are split into several records.
TRANSFORM_RECORD_BYTES = 5 * 1024 * 1024


def log_status(message: str, enabled: bool) -> None:
    """One ``[sagemaker]`` status line on stderr when ``enabled``.

    Examples
    --------
    >>> log_status("not shown", False)
    """
    if enabled:
        print(f"[sagemaker] {message}", file=sys.stderr, flush=True)


def pack_requests(windows: FloatArray, max_bytes: int = MAX_PAYLOAD_BYTES) -> list[tuple[int, int, bytes]]:
    """Split windows into TF Serving JSON bodies ``{"instances": [...]}`` under ``max_bytes``.

    Returns ``(start, stop, body)`` triples covering ``windows`` in order.

    Examples
    --------
    >>> import numpy as np
    >>> parts = pack_requests(np.zeros((10, 4), np.float32), max_bytes=100)
    >>> [(a, b) for a, b, _ in parts]
    [(0, 4), (4, 8), (8, 10)]
    """
    rows = [json.dumps(row) for row in windows.tolist()]
    overhead = len('{"instances": []}')
    out: list[tuple[int, int, bytes]] = []
    start, size = 0, overhead
    for i, row in enumerate(rows):
        extra = len(row) + (1 if i > start else 0)
        if size + extra > max_bytes and i > start:
            out.append((start, i, ('{"instances": [' + ",".join(rows[start:i]) + "]}").encode()))
            start, size = i, overhead
            extra = len(row)
        if overhead + len(row) > max_bytes:
            raise ParameterError(f"one feature window needs {len(row)} bytes, more than max_bytes={max_bytes}")
        size += extra
    if start < len(rows):
        out.append((start, len(rows), ('{"instances": [' + ",".join(rows[start:]) + "]}").encode()))
    return out


def check_windows(clip_windows: list[FloatArray]) -> int:
    """Check, before anything is billed, that every clip is a 2-D block of windows of one width.

    Returns the common width (0 for no clips).

    Examples
    --------
    >>> import numpy as np
    >>> check_windows([np.zeros((3, 4), np.float32), np.zeros((1, 4), np.float32)])
    4
    """
    widths = set()
    for i, windows in enumerate(clip_windows):
        shape = np.shape(windows)
        if len(shape) != 2:
            raise ParameterError(
                f"clip {i}: windows must be 2-D (n_windows, n_features), got shape {shape}; "
                "SageMaker serves the autoencoder on LogMelFrames features only"
            )
        widths.add(shape[1])
    if len(widths) > 1:
        raise ParameterError(f"clips have windows of different widths {sorted(widths)}")
    return int(widths.pop()) if widths else 0


class SageMakerServing(abc.ABC):
    """Endpoints and batch transform for a backend that supplies clients, tags and polling.

    A subclass (:class:`~soundanomaly.backends.sagemaker.SageMakerBackend`) provides the attributes and the
    abstract methods below; this class creates and always deletes the serving resources.

    Examples
    --------
    >>> from soundanomaly.backends.sagemaker import SageMakerBackend
    >>> issubclass(SageMakerBackend, SageMakerServing)
    True
    """

    role: str
    bucket: str
    prefix: str
    tags: dict[str, str]
    progress: bool
    timeout_seconds: float | None
    last_transform_job_name: str | None

    @abc.abstractmethod
    def client(self, service: str) -> Any:
        """A boto3 client for ``service``."""

    @abc.abstractmethod
    def _tag_list(self) -> list[dict[str, str]]:
        """The resource tags in the API's ``[{"Key": ..., "Value": ...}]`` form."""

    @abc.abstractmethod
    def _image(self, scope: str, instance_type: str | None = None) -> str:
        """The container image URI for ``scope`` ("training" or "inference") on ``instance_type``."""

    @abc.abstractmethod
    def _poll(
        self,
        what: str,
        describe: Callable[[], dict[str, Any]],
        status_key: str,
        done: str,
        timeout_seconds: float | None,
    ) -> dict[str, Any]:
        """Describe until ``status_key`` is ``done``; raise on failure or timeout."""

    def _create_model(self, name: str, model_data: str, instance_type: str) -> None:
        """A SageMaker model: the TF Serving inference image for ``instance_type`` over ``model_data``."""
        _call(
            "creating the model",
            self.client("sagemaker").create_model,
            ModelName=name,
            ExecutionRoleArn=self.role,
            PrimaryContainer={"Image": self._image("inference", instance_type), "ModelDataUrl": model_data},
            **({"Tags": self._tag_list()} if self.tags else {}),
        )

    # -- endpoints ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def deploy(
        self,
        model_data: str,
        *,
        instance_type: str = ENDPOINT_INSTANCE,
        instance_count: int = 1,
        name: str | None = None,
        timeout_seconds: float = 1800.0,
    ) -> Iterator[SageMakerEndpoint]:
        """Create model, endpoint config and endpoint; delete all three on exit.

        Deletion runs on normal exit, on exceptions and on Ctrl-C. The
        endpoint is billed per instance-hour while it exists (``ml.c5.large``:
        about $0.12 per hour, see :data:`HOURLY_USD`); the inference image
        (CPU or GPU) is chosen for ``instance_type``.

        Examples
        --------
        >>> with backend.deploy(result.model_data) as endpoint:  # doctest: +SKIP
        ...     reconstructed = endpoint.reconstruct(windows)
        """
        name = name or f"soundanomaly-{uuid.uuid4().hex[:12]}"
        sm = self.client("sagemaker")
        created: list[str] = []
        try:
            self._create_model(name, model_data, instance_type)
            created.append("model")
            _call(
                "creating the endpoint config",
                sm.create_endpoint_config,
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InstanceType": instance_type,
                        "InitialInstanceCount": instance_count,
                    }
                ],
                **({"Tags": self._tag_list()} if self.tags else {}),
            )
            created.append("endpoint_config")
            _call("creating the endpoint", sm.create_endpoint, EndpointName=name, EndpointConfigName=name)
            created.append("endpoint")
            log_status(f"endpoint {name} creating ({instance_type} x {instance_count})", self.progress)
            self._wait_endpoint(name, timeout_seconds)
            yield SageMakerEndpoint(self, name)
        finally:
            self._delete_endpoint_resources(name, created)

    def _wait_endpoint(self, name: str, timeout_seconds: float) -> None:
        sm = self.client("sagemaker")

        def describe() -> dict[str, Any]:
            return dict(_call(f"describing endpoint {name}", sm.describe_endpoint, EndpointName=name))

        self._poll(f"endpoint {name}", describe, "EndpointStatus", "InService", timeout_seconds)

    def _delete_endpoint_resources(self, name: str, created: list[str]) -> None:
        sm = self.client("sagemaker")
        steps = [
            ("endpoint", "deleting the endpoint", sm.delete_endpoint, {"EndpointName": name}),
            (
                "endpoint_config",
                "deleting the endpoint config",
                sm.delete_endpoint_config,
                {"EndpointConfigName": name},
            ),
            ("model", "deleting the model", sm.delete_model, {"ModelName": name}),
        ]
        failures = []
        for kind, what, fn, kwargs in steps:
            if kind in created:
                try:
                    _call(what, fn, **kwargs)
                except BackendError as exc:
                    failures.append(str(exc))
        if created:
            log_status(f"deleted {', '.join(reversed(created))} {name}", self.progress)
        if failures:
            raise BackendError(f"could not clean up {name} (delete by hand to stop charges): {'; '.join(failures)}")

    # -- batch transform ------------------------------------------------------------------------------
    def batch_transform(
        self,
        clip_windows: list[FloatArray],
        model_data: str,
        *,
        instance_type: str = TRANSFORM_INSTANCE,
        instance_count: int = 1,
        clips_per_file: int = 256,
        record_bytes: int = TRANSFORM_RECORD_BYTES,
    ) -> list[FloatArray]:
        """Reconstruct the windows of many clips with a batch transform job.

        Uploads JSON Lines under ``s3://bucket/prefix/transform/<id>/input/``:
        one record per clip, or several for a clip whose windows exceed
        ``record_bytes`` (reassembled afterwards), with ``MaxPayloadInMB`` sized
        from the largest record. Runs the job on a temporary model, returns
        each clip's reconstructed windows, and deletes the model and the
        job's S3 input and output (and stops the job if interrupted). Billed
        per instance-hour while the job runs (``ml.c5.xlarge``: about $0.24
        per hour, see :data:`HOURLY_USD`).
        """
        if not 0 < record_bytes <= 100 * 1024 * 1024:
            raise ParameterError(f"record_bytes must be in (0, 100 MB], got {record_bytes!r}")
        width = check_windows(clip_windows)
        run = uuid.uuid4().hex[:12]
        name = f"soundanomaly-transform-{run}"
        self.last_transform_job_name = name
        base = f"{self.prefix}/transform/{run}"
        s3 = self.client("s3")
        files: list[tuple[str, list[tuple[int, int, int]]]] = []  # file, [(clip, start, stop) per record]
        largest = 0
        try:
            for number, first in enumerate(range(0, len(clip_windows), clips_per_file)):
                records: list[tuple[int, int, int]] = []
                bodies: list[bytes] = []
                for clip in range(first, min(first + clips_per_file, len(clip_windows))):
                    for start, stop, body in pack_requests(clip_windows[clip], record_bytes):
                        records.append((clip, start, stop))
                        bodies.append(body)
                        largest = max(largest, len(body))
                key = f"{base}/input/part-{number:05d}.jsonl"
                _call(f"uploading {key}", s3.put_object, Bucket=self.bucket, Key=key, Body=b"\n".join(bodies) + b"\n")
                files.append((f"part-{number:05d}.jsonl", records))
            return self._run_transform(
                name, base, files, len(clip_windows), width, largest, model_data, instance_type, instance_count
            )
        finally:
            self._delete_prefix(f"{base}/")

    def _run_transform(
        self,
        name: str,
        base: str,
        files: list[tuple[str, list[tuple[int, int, int]]]],
        n_clips: int,
        width: int,
        largest: int,
        model_data: str,
        instance_type: str,
        instance_count: int,
    ) -> list[FloatArray]:
        s3, sm = self.client("s3"), self.client("sagemaker")
        max_payload_mb = max(1, math.ceil(largest / (1024 * 1024)))
        created_model = started = False
        try:
            self._create_model(name, model_data, instance_type)
            created_model = True
            _call(
                "creating the transform job",
                sm.create_transform_job,
                TransformJobName=name,
                ModelName=name,
                MaxPayloadInMB=max_payload_mb,
                BatchStrategy="SingleRecord",
                TransformInput={
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{self.bucket}/{base}/input/"}
                    },
                    "ContentType": "application/jsonlines",
                    "SplitType": "Line",
                },
                TransformOutput={
                    "S3OutputPath": f"s3://{self.bucket}/{base}/output/",
                    "Accept": "application/jsonlines",
                    "AssembleWith": "Line",
                },
                TransformResources={"InstanceType": instance_type, "InstanceCount": instance_count},
                **({"Tags": self._tag_list()} if self.tags else {}),
            )
            started = True
            log_status(f"transform job {name} submitted for {n_clips} clips", self.progress)
            self.wait_for_transform(name)
            started = False
            parts: list[list[FloatArray]] = [[] for _ in range(n_clips)]
            for file_name, records in files:
                key = f"{base}/output/{file_name}.out"
                body = _call(f"downloading {key}", s3.get_object, Bucket=self.bucket, Key=key)["Body"].read()
                results = [line for line in body.decode().splitlines() if line.strip()]
                if len(results) != len(records):
                    raise BackendError(f"{key}: {len(results)} results for {len(records)} records")
                for (clip, start, stop), line in zip(records, results, strict=True):
                    try:
                        block = np.asarray(json.loads(line)["predictions"], dtype=np.float32)
                    except (ValueError, KeyError, TypeError) as exc:
                        raise BackendError(f"{key}: unexpected result ({exc})") from exc
                    if block.shape != (stop - start, width):
                        raise BackendError(f"{key}: got {block.shape} predictions for {stop - start} windows")
                    parts[clip].append(block)
            return [np.concatenate(blocks) if blocks else np.empty((0, width), np.float32) for blocks in parts]
        finally:
            if started:
                with contextlib.suppress(BackendError):
                    _call("stopping the transform job", sm.stop_transform_job, TransformJobName=name)
            if created_model:
                _call("deleting the model", sm.delete_model, ModelName=name)

    def _delete_prefix(self, key_prefix: str) -> None:
        """Delete soundanomaly's temporary objects under ``key_prefix`` (warn, never raise: data is not lost)."""
        s3 = self.client("s3")
        try:
            paginator = s3.get_paginator("list_objects_v2")
            pages = _call(
                f"listing {key_prefix}", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=key_prefix))
            )
            keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
            for first in range(0, len(keys), 1000):
                _call(
                    f"deleting s3://{self.bucket}/{key_prefix}",
                    s3.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": keys[first : first + 1000], "Quiet": True},
                )
        except BackendError as exc:
            log_status(f"WARNING: could not delete s3://{self.bucket}/{key_prefix} ({exc}); delete it by hand", True)

    def wait_for_transform(self, job_name: str) -> dict[str, Any]:
        """Poll a transform job until it ends; raise with its FailureReason on failure."""
        sm = self.client("sagemaker")

        def describe() -> dict[str, Any]:
            return dict(_call(f"describing {job_name}", sm.describe_transform_job, TransformJobName=job_name))

        return self._poll(job_name, describe, "TransformJobStatus", "Completed", self.timeout_seconds)


class SageMakerEndpoint:
    """A running endpoint serving the autoencoder (TF Serving's JSON protocol).

    Examples
    --------
    >>> with backend.deploy(detector.model_data_) as endpoint:  # doctest: +SKIP
    ...     reconstructed = endpoint.reconstruct(features.windows)

    """

    def __init__(self, backend: SageMakerServing, name: str, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.backend = backend
        self.name = name
        self.max_bytes = max_bytes
        self.requests = 0

    def reconstruct(self, windows: FloatArray) -> FloatArray:
        """Send windows in requests under the payload limit; return the reconstructions."""
        check_windows([windows])
        runtime = self.backend.client("sagemaker-runtime")
        out = np.empty(windows.shape, dtype=np.float32)
        for start, stop, body in pack_requests(windows, self.max_bytes):
            response = _call(
                f"invoking endpoint {self.name}",
                runtime.invoke_endpoint,
                EndpointName=self.name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
            self.requests += 1
            try:
                predictions = json.loads(response["Body"].read())["predictions"]
            except (ValueError, KeyError, TypeError) as exc:
                raise BackendError(f"endpoint {self.name}: unexpected response ({exc})") from exc
            block = np.asarray(predictions, dtype=np.float32)
            if block.shape != (stop - start, windows.shape[1]):
                raise BackendError(f"endpoint {self.name}: got {block.shape} predictions for {stop - start} windows")
            out[start:stop] = block
        return out
