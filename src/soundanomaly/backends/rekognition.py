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

__all__ = ["INFERENCE_UNIT_HOUR_USD", "CustomLabels"]

#: On-demand price of one Custom Labels inference unit per hour (us-east-1, 2026), for cost estimates.
INFERENCE_UNIT_HOUR_USD = 4.00


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
    def _new_client(self, service: str, endpoint_url: str | None) -> Any:
        import boto3
        from botocore.config import Config

        session = self._session or boto3.Session(region_name=self._region)
        config = Config(retries={"mode": "standard", "max_attempts": 3})
        return session.client(service, endpoint_url=endpoint_url, config=config)

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
        """Start training a model version; return its ARN."""
        if self.project_arn is None:
            self.ensure_project()

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

    def stop(self, version_arn: str, *, timeout_seconds: float = 1800.0) -> None:
        """Stop the model (if starting or running) and wait until it is STOPPED."""
        status = self.describe_version(version_arn).get("Status")
        if status in ("RUNNING", "STARTING"):
            self.call("stopping the model", "stop_project_version", ProjectVersionArn=version_arn)
        start = time.monotonic()
        while status not in ("STOPPED", "TRAINING_COMPLETED", "TRAINING_FAILED", "FAILED", "DELETING"):
            if time.monotonic() - start > timeout_seconds:
                raise BackendTimeoutError(f"model still {status} after {timeout_seconds:.0f} s; stop it by hand")
            time.sleep(self.poll_seconds)
            status = self.describe_version(version_arn).get("Status")
        self.log(f"model stopped ({status})")

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

    def delete(self, *, delete_project: bool = True) -> None:
        """Stop and delete every model version of the project, then the project itself."""
        try:
            project_arn = self.find_project()
        except BackendError as exc:
            if exc.code == "ResourceNotFoundException":
                return  # nothing to delete
            raise
        versions = self.call("listing models", "describe_project_versions", ProjectArn=project_arn)
        for version in versions.get("ProjectVersionDescriptions", []):
            arn = version["ProjectVersionArn"]
            self.stop(arn)
            self.call("deleting the model", "delete_project_version", ProjectVersionArn=arn)
        if delete_project:
            self.call("deleting the project", "delete_project", ProjectArn=project_arn)
            self.log(f"deleted project {self.project_name}")
            self.project_arn = None
