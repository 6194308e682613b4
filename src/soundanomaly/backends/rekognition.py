"""Amazon Rekognition Custom Labels: project, manifests, model versions, start/stop, detect, cleanup.

Used by :class:`~soundanomaly.detectors.RekognitionDetector`; usable on its
own. Every client is injectable (a boto3 session, a region, an endpoint URL
or ready-made clients), waits use the service model's own waiters with a
timeout and progress messages, throttled calls are retried with backoff, and
service errors become :class:`BackendError` subclasses chained ``from`` the
botocore error.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from soundanomaly.backends._aws import aws_call as _call
from soundanomaly.exceptions import BackendError, BackendTimeoutError, JobFailedError, ParameterError, ThrottlingError

__all__ = ["INFERENCE_UNIT_HOUR_USD", "TRAINING_HOUR_USD", "CustomLabels", "check_image_size"]

#: On-demand price of one Custom Labels inference unit per hour (us-east-1, 2026), for cost estimates.
INFERENCE_UNIT_HOUR_USD = 4.00
#: On-demand price of one hour of Custom Labels training (us-east-1, 2026).
TRAINING_HOUR_USD = 1.00
#: Custom Labels' image limits: pixels per side, and longer side / shorter side.
MIN_IMAGE_PIXELS, MAX_IMAGE_PIXELS, MAX_ASPECT_RATIO = 64, 4096, 20.0
#: Model statuses from which a model reaches RUNNING or FAILED soon, or STOPPED soon.
_STARTING, _STOPPING = ("STARTING",), ("STOPPING",)
#: Statuses in which a model version cannot be deleted yet; waiting makes no sense for training (hours).
_BUSY = ("TRAINING_IN_PROGRESS", "COPYING_IN_PROGRESS")


def check_image_size(width: int, height: int, *, what: str = "image") -> None:
    """Raise :class:`ParameterError` unless Custom Labels accepts an image of this size.

    At least 64 x 64 and at most 4096 x 4096 pixels, aspect ratio at most
    20:1. A spectrogram image is ``n_mels`` high and about ``1 + samples / 512``
    wide: with the defaults, clips of 2.05 s to 41 s at 16 kHz.

    Examples
    --------
    >>> check_image_size(313, 64)
    >>> check_image_size(63, 64, what="clip.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: clip.wav: image is 63 x 64 pixels; Custom Labels needs 64 to 4096 pixels a side and an aspect ratio of at most 20:1 (use longer clips, more n_mels, or SpectrogramImages(size=...))
    """
    short, long = min(width, height), max(width, height)
    if short < MIN_IMAGE_PIXELS or long > MAX_IMAGE_PIXELS or long / short > MAX_ASPECT_RATIO:
        raise ParameterError(
            f"{what}: image is {width} x {height} pixels; Custom Labels needs {MIN_IMAGE_PIXELS} to "
            f"{MAX_IMAGE_PIXELS} pixels a side and an aspect ratio of at most 20:1 "
            "(use longer clips, more n_mels, or SpectrogramImages(size=...))"
        )


class CustomLabels:
    """A thin, safe wrapper of the Custom Labels API for one project.

    Parameters
    ----------
    project_name : str
    boto_session : boto3.Session, optional
    region : str, optional
    endpoint_url : str, optional
        Rekognition endpoint (e.g. a local stand-in); S3 uses ``s3_endpoint_url``.
    s3_endpoint_url : str, optional
    rekognition_client, s3_client : boto3 clients, optional
        Use these instead of creating clients.
    poll_seconds : float, default 30
    progress : bool, default True
    max_retries : int, default 6
        Extra attempts (exponential backoff with jitter) after botocore's own
        retries when a call is throttled.

    Examples
    --------
    >>> labels = CustomLabels("fans", region="us-east-1")
    >>> labels.version_name("arn:aws:rekognition:us-east-1:1:project/fans/version/v1/1700000000000")
    'v1'
    >>> labels.ensure_project()  # doctest: +SKIP

    """

    def __init__(
        self,
        project_name: str,
        *,
        boto_session: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        s3_endpoint_url: str | None = None,
        rekognition_client: Any = None,
        s3_client: Any = None,
        poll_seconds: float = 30.0,
        progress: bool = True,
        max_retries: int = 6,
    ) -> None:
        if not project_name or len(project_name) > 255:
            raise ParameterError(f"project_name must be 1-255 characters, got {project_name!r}")
        self.project_name = project_name
        self.poll_seconds = poll_seconds
        self.progress = progress
        self.max_retries = max_retries
        self._session = boto_session
        self._region = region
        self._endpoint_url = endpoint_url
        self._s3_endpoint_url = s3_endpoint_url
        self._rekognition = rekognition_client
        self._s3 = s3_client
        self.project_arn: str | None = None

    # -- clients -----------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The boto3 session every client comes from."""
        if self._session is None:
            import boto3

            self._session = boto3.Session(region_name=self._region)
        return self._session

    @property
    def region_name(self) -> str:
        """Rekognition's region; :class:`ParameterError` when none is configured."""
        region = self._rekognition.meta.region_name if self._rekognition is not None else self.session.region_name
        if not region:
            raise ParameterError(
                "no AWS region: pass region= or a boto_session with a region, or set AWS_DEFAULT_REGION"
            )
        return str(region)

    def _new_client(self, service: str, endpoint_url: str | None) -> Any:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        config = Config(retries={"mode": "standard", "max_attempts": 3})
        try:
            return self.session.client(service, endpoint_url=endpoint_url, config=config, region_name=self.region_name)
        except BotoCoreError as exc:
            raise BackendError(f"creating the {service} client: {exc}") from exc

    @property
    def rekognition(self) -> Any:
        """The Rekognition client."""
        if self._rekognition is None:
            self._rekognition = self._new_client("rekognition", self._endpoint_url)
        return self._rekognition

    @property
    def s3(self) -> Any:
        """The S3 client (images, manifests, evaluation output)."""
        if self._s3 is None:
            self._s3 = self._new_client("s3", self._s3_endpoint_url)
        return self._s3

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[rekognition] {message}", file=sys.stderr, flush=True)

    def call(self, what: str, method: str, **kwargs: Any) -> Any:
        """Call a Rekognition operation, retrying throttled calls with backoff."""
        fn = getattr(self.rekognition, method)
        for attempt in range(self.max_retries + 1):
            try:
                return _call(what, fn, **kwargs)
            except ThrottlingError:
                if attempt == self.max_retries:
                    raise
                time.sleep(min(20.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def put_object(self, bucket: str, key: str, body: bytes, **kwargs: Any) -> None:
        """Upload one object, mapping S3 errors to :class:`BackendError`."""
        _call(f"uploading s3://{bucket}/{key}", self.s3.put_object, Bucket=bucket, Key=key, Body=body, **kwargs)

    def check_bucket_region(self, bucket: str) -> None:
        """Raise :class:`ParameterError` unless ``bucket`` is in Rekognition's region (the service needs it)."""
        found = _call(f"locating bucket {bucket}", self.s3.get_bucket_location, Bucket=bucket)
        bucket_region = found.get("LocationConstraint") or "us-east-1"  # S3 reports us-east-1 as null
        if bucket_region == "EU":  # pragma: no cover - legacy name of eu-west-1
            bucket_region = "eu-west-1"
        if bucket_region != self.region_name:
            raise ParameterError(
                f"bucket {bucket!r} is in {bucket_region}, Rekognition in {self.region_name}: "
                "Custom Labels reads images only from a bucket in its own region"
            )

    # -- project -----------------------------------------------------------------------------------
    def ensure_project(self) -> str:
        """Create the project, or find it by name if it exists (idempotent); return its ARN."""
        try:
            arn = str(self.call("creating the project", "create_project", ProjectName=self.project_name)["ProjectArn"])
            self.log(f"created project {self.project_name}")
        except BackendError as exc:
            if exc.code != "ResourceInUseException":
                raise
            found = self.call("finding the project", "describe_projects", ProjectNames=[self.project_name])
            projects = found.get("ProjectDescriptions", [])
            if not projects:
                raise
            arn = str(projects[0]["ProjectArn"])
            self.log(f"using existing project {self.project_name}")
        self.project_arn = arn
        return arn

    def datasets(self) -> list[str]:
        """ARNs of the project's datasets (a project created in the console has them)."""
        found = self.call("finding the project", "describe_projects", ProjectNames=[self.project_name])
        return [str(d["DatasetArn"]) for p in found.get("ProjectDescriptions", []) for d in p.get("Datasets", [])]

    def versions(self) -> list[dict[str, Any]]:
        """Every model version of the project (all pages of DescribeProjectVersions)."""
        project_arn = self.find_project()
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.call(
                "listing models",
                "describe_project_versions",
                ProjectArn=project_arn,
                **({"NextToken": token} if token else {}),
            )
            out += page.get("ProjectVersionDescriptions", [])
            token = page.get("NextToken")
            if not token:
                return out

    def find_project(self) -> str:
        """The project's ARN, looked up by name (never creates it)."""
        if self.project_arn is None:
            found = self.call("finding the project", "describe_projects", ProjectNames=[self.project_name])
            if not found.get("ProjectDescriptions"):
                raise BackendError(f"project {self.project_name!r} not found", code="ResourceNotFoundException")
            self.project_arn = str(found["ProjectDescriptions"][0]["ProjectArn"])
        return self.project_arn

    @staticmethod
    def version_name(version_arn: str) -> str:
        """``.../project/<p>/version/<name>/<timestamp>`` → ``<name>``."""
        return version_arn.split("/version/")[1].split("/")[0]

    def describe_version(self, version_arn: str) -> dict[str, Any]:
        """The DescribeProjectVersions entry of one model version."""
        found = self.call(
            "describing the model",
            "describe_project_versions",
            ProjectArn=self.find_project(),
            VersionNames=[self.version_name(version_arn)],
        )
        versions = found.get("ProjectVersionDescriptions", [])
        if not versions:
            raise BackendError(f"model version {version_arn} not found")
        return dict(versions[0])

    def create_version(
        self,
        version_name: str,
        *,
        bucket: str,
        train_manifest_key: str,
        test_manifest_key: str | None,
        output_prefix: str,
    ) -> str:
        """Start training a model version from Ground Truth manifests; return its ARN.

        Manifests can only train a project without datasets (AWS's rule): a
        project with datasets (made in the console) is refused with
        :class:`ParameterError` before anything is submitted.
        """
        if self.project_arn is None:
            self.ensure_project()
        self.check_no_datasets()

        def manifest(key: str) -> dict[str, Any]:
            return {"Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}]}

        testing = manifest(test_manifest_key) if test_manifest_key else {"AutoCreate": True}
        response = self.call(
            "creating the model version",
            "create_project_version",
            ProjectArn=self.project_arn,
            VersionName=version_name,
            OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": output_prefix},
            TrainingData=manifest(train_manifest_key),
            TestingData=testing,
        )
        self.log(f"training model version {version_name}")
        return str(response["ProjectVersionArn"])

    def check_no_datasets(self) -> None:
        """:class:`ParameterError` if the project has datasets (manifests then cannot train it)."""
        if self.datasets():
            raise ParameterError(
                f"project {self.project_name!r} has datasets (made in the console?): Custom Labels trains such a "
                "project from its datasets only; use another project_name, or delete the datasets"
            )

    def wait(self, version_arn: str, waiter_name: str, *, timeout_seconds: float) -> dict[str, Any]:
        """Wait with the service's waiter, printing progress; raise on failure or timeout."""
        from botocore.exceptions import WaiterError

        waiter = self.rekognition.get_waiter(waiter_name)
        project_arn = self.find_project()
        name = self.version_name(version_arn)
        start = time.monotonic()
        last = ""
        while True:
            try:
                waiter.wait(
                    ProjectArn=project_arn,
                    VersionNames=[name],
                    WaiterConfig={"Delay": max(self.poll_seconds, 0.001), "MaxAttempts": 1},
                )
                return self.describe_version(version_arn)
            except WaiterError as exc:
                description = self.describe_version(version_arn)
                status = description.get("Status", "?")
                if "terminal failure state" in str(exc) or status in ("TRAINING_FAILED", "FAILED"):
                    raise JobFailedError(version_arn, description.get("StatusMessage") or status) from exc
                if status != last:
                    self.log(f"{name}: {status} ({time.monotonic() - start:.0f} s)")
                    last = status
                if time.monotonic() - start > timeout_seconds:
                    raise BackendTimeoutError(f"{name} still {status} after {timeout_seconds:.0f} s") from exc
                time.sleep(self.poll_seconds)

    def start(self, version_arn: str, *, min_inference_units: int = 1, timeout_seconds: float = 1800.0) -> None:
        """Start the model and wait until it is RUNNING (billing starts now)."""
        if min_inference_units < 1:
            raise ParameterError(f"min_inference_units must be >= 1, got {min_inference_units!r}")
        self.call(
            "starting the model",
            "start_project_version",
            ProjectVersionArn=version_arn,
            MinInferenceUnits=min_inference_units,
        )
        self.log(
            f"starting model with {min_inference_units} inference unit(s) (~${INFERENCE_UNIT_HOUR_USD:.2f}/unit-hour)"
        )
        self.wait(version_arn, "project_version_running", timeout_seconds=timeout_seconds)

    def _wait_status(self, version_arn: str, leaving: tuple[str, ...], timeout_seconds: float) -> str:
        """Poll while the model's status is in ``leaving``; return the status it reached."""
        start = time.monotonic()
        status = str(self.describe_version(version_arn).get("Status"))
        while status in leaving:
            if time.monotonic() - start > timeout_seconds:
                raise BackendTimeoutError(f"model still {status} after {timeout_seconds:.0f} s; stop it by hand")
            time.sleep(self.poll_seconds)
            status = str(self.describe_version(version_arn).get("Status"))
        return status

    def stop(self, version_arn: str, *, timeout_seconds: float = 1800.0) -> str:
        """Stop the model if it is starting or running, wait until it is STOPPED; return its final status.

        The API stops RUNNING models only: a STARTING model is first waited
        for (RUNNING or FAILED). A model in any other status (STOPPED,
        TRAINING_*, COPYING_*, DEPRECATED, EXPIRED, FAILED, DELETING) is not
        running and is left as it is, without waiting.
        """
        status = self._wait_status(version_arn, _STARTING, timeout_seconds)
        if status == "RUNNING":
            for attempt in range(self.max_retries + 1):
                try:
                    self.call("stopping the model", "stop_project_version", ProjectVersionArn=version_arn)
                    break
                except BackendError as exc:  # e.g. a concurrent start/stop still settling
                    if exc.code != "ResourceInUseException" or attempt == self.max_retries:
                        raise
                    time.sleep(min(20.0, self.poll_seconds * 2**attempt))
                    if self.describe_version(version_arn).get("Status") != "RUNNING":
                        break
            status = self._wait_status(version_arn, ("RUNNING", *_STOPPING), timeout_seconds)
        elif status in _STOPPING:
            status = self._wait_status(version_arn, _STOPPING, timeout_seconds)
        self.log(f"model {self.version_name(version_arn)}: {status}")
        return status

    def detect(self, version_arn: str, image: bytes | str, *, min_confidence: float = 0.0) -> dict[str, float]:
        """Label confidences (0-100) for one image (PNG/JPEG bytes or an ``s3://`` URI), by label name."""
        if isinstance(image, str):
            if not image.startswith("s3://"):
                raise ParameterError(f"image must be bytes or an s3:// URI, got {image!r}")
            bucket, _, key = image[5:].partition("/")
            source: dict[str, Any] = {"S3Object": {"Bucket": bucket, "Name": key}}
        else:
            source = {"Bytes": image}
        response = self.call(
            "detecting custom labels",
            "detect_custom_labels",
            ProjectVersionArn=version_arn,
            Image=source,
            MinConfidence=min_confidence,
        )
        return {label["Name"]: float(label["Confidence"]) for label in response.get("CustomLabels", [])}

    def delete(self, *, delete_project: bool = True, timeout_seconds: float = 1800.0) -> None:
        """Stop and delete every model version (all pages), wait until they are gone, then the datasets and the project.

        AWS deletes model versions asynchronously and refuses ``DeleteProject``
        while any remain, so each step is polled before the next. A version
        still training (hours) cannot be deleted: :class:`BackendError`
        names it, after everything else that could be deleted was.
        """
        try:
            project_arn = self.find_project()
        except BackendError as exc:
            if exc.code == "ResourceNotFoundException":
                return  # nothing to delete
            raise
        busy = []
        for version in self.versions():
            arn, status = version["ProjectVersionArn"], version.get("Status")
            if status in _BUSY:
                busy.append(f"{self.version_name(arn)} ({status})")
                continue
            if status == "DELETING":
                continue
            self.stop(arn, timeout_seconds=timeout_seconds)
            self.call("deleting the model", "delete_project_version", ProjectVersionArn=arn)
        self._wait_gone("model versions", lambda: [v for v in self.versions() if v.get("Status") not in _BUSY],
                        timeout_seconds)  # fmt: skip
        if busy:
            raise BackendError(
                f"project {self.project_name}: cannot delete model versions still {', '.join(busy)}; "
                "run cleanup again when training has ended"
            )
        if not delete_project:
            return
        for dataset_arn in self.datasets():
            self.call("deleting a dataset", "delete_dataset", DatasetArn=dataset_arn)
        self._wait_gone("datasets", self.datasets, timeout_seconds)
        self.call("deleting the project", "delete_project", ProjectArn=project_arn)

        def still_there() -> list[Any]:
            found = self.call("finding the project", "describe_projects", ProjectNames=[self.project_name])
            return list(found.get("ProjectDescriptions", []))

        self._wait_gone("the project", still_there, timeout_seconds)
        self.log(f"deleted project {self.project_name}")
        self.project_arn = None

    def _wait_gone(self, what: str, remaining: Any, timeout_seconds: float) -> None:
        start = time.monotonic()
        while left := remaining():
            if time.monotonic() - start > timeout_seconds:
                raise BackendTimeoutError(f"{len(left)} {what} still being deleted after {timeout_seconds:.0f} s")
            time.sleep(self.poll_seconds)
