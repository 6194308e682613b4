"""A local stand-in for Amazon Rekognition Custom Labels that speaks the real wire protocol.

moto has no Custom Labels lifecycle, so this server implements it: JSON 1.1
requests (``X-Amz-Target: RekognitionService.<Operation>``) on 127.0.0.1,
the service's state machine (TRAINING_IN_PROGRESS → TRAINING_COMPLETED or
TRAINING_FAILED; STARTING → RUNNING → STOPPING → STOPPED), its error codes,
manifests and images read from S3 (moto's server, through boto3), and a real
model: training fits :func:`soundanomaly.detectors.cnn.build_cnn` on the
manifest's images and ``DetectCustomLabels`` answers with its predictions.

It is as strict as the service where the service's rules are documented:

* ``DeleteProjectVersion`` and ``DeleteProject`` are asynchronous (DELETING,
  gone after ``transition_seconds``); ``DeleteProject`` is refused while the
  project has model versions; a model is deleted only when not running,
  starting, stopping or training.
* ``StopProjectVersion`` only stops a RUNNING model; ``StartProjectVersion``
  needs TRAINING_COMPLETED or STOPPED.
* ``CreateProjectVersion``: ``TrainingData`` and ``TestingData`` go together,
  and only for a project without datasets (``CreateDataset``); a project with
  datasets trains from them.
* Images: at least 64 x 64 and at most 4096 x 4096 pixels, aspect ratio at
  most 20:1. Training drops invalid or unreadable images and fails (as AWS's
  ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST) when more than
  ``max_invalid_share`` of them are invalid (AWS does not publish its
  number); images may differ in size (``DetectCustomLabels`` resizes).
* ``DescribeProjectVersions`` and ``DescribeProjects`` are paginated
  (``page_size``, ``NextToken``).

Point a real boto3 client at :attr:`FakeRekognition.url` (``endpoint_url=``);
botocore still validates every request against the service model.

Examples
--------
>>> with FakeRekognition() as fake:  # doctest: +SKIP
...     client = boto3.client("rekognition", endpoint_url=fake.url)
...     client.create_project(ProjectName="fans")
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from soundanomaly.features.images import decode_png
from soundanomaly.manifest import read_manifest

__all__ = ["FakeRekognition"]


class ServiceError(Exception):
    """An error answered in the service's format."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class _Version:
    arn: str
    name: str
    project: str
    created: float
    status: str = "TRAINING_IN_PROGRESS"
    status_message: str = "The model is being trained."
    output: dict[str, Any] = field(default_factory=dict)
    f1: float | None = None
    model: Any = None
    image_shape: tuple[int, int] | None = None
    min_units: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


#: The service's image limits (pixels; longer side / shorter side).
MIN_IMAGE_PIXELS, MAX_IMAGE_PIXELS, MAX_ASPECT_RATIO = 64, 4096, 20.0


def image_problem(height: int, width: int) -> str | None:
    """Why Custom Labels refuses an image of this size, or None.

    Examples
    --------
    >>> image_problem(64, 63)
    'image is 63 x 64 pixels; Custom Labels needs 64 to 4096 pixels a side'
    >>> image_problem(64, 1400)
    'image is 1400 x 64 pixels; Custom Labels needs an aspect ratio of at most 20:1'
    >>> image_problem(128, 313) is None
    True
    """
    if min(height, width) < MIN_IMAGE_PIXELS or max(height, width) > MAX_IMAGE_PIXELS:
        return (
            f"image is {width} x {height} pixels; Custom Labels needs {MIN_IMAGE_PIXELS} to "
            f"{MAX_IMAGE_PIXELS} pixels a side"
        )
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        return f"image is {width} x {height} pixels; Custom Labels needs an aspect ratio of at most 20:1"
    return None


def _resize(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.minimum((np.arange(shape[0]) * pixels.shape[0]) // shape[0], pixels.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * pixels.shape[1]) // shape[1], pixels.shape[1] - 1)
    return np.asarray(pixels[rows][:, cols])


class FakeRekognition:
    """Rekognition Custom Labels on 127.0.0.1.

    Parameters
    ----------
    s3_client : boto3 S3 client, optional
        Where manifests and images are read (default: ``boto3.client("s3")``,
        which honours ``AWS_ENDPOINT_URL``).
    epochs : int, default 8
        Training epochs of the real model fitted on the manifest's images.
    transition_seconds : float, default 0.05
        How long STARTING, STOPPING and the asynchronous deletions last.
    region, account : str
        Used in ARNs.
    page_size : int, default 100
        Results per page of ``DescribeProjectVersions``/``DescribeProjects``
        (when the request gives no smaller ``MaxResults``).
    max_invalid_share : float, default 0.2
        Training fails when more than this share of a manifest's images
        are missing or invalid (AWS drops invalid rows and fails above an
        unpublished share).

    Attributes
    ----------
    calls : list of str
        Operation names in the order received.

    Examples
    --------
    >>> import boto3
    >>> with FakeRekognition() as fake:
    ...     client = boto3.client("rekognition", endpoint_url=fake.url, region_name="us-east-1",
    ...                           aws_access_key_id="x", aws_secret_access_key="x")
    ...     arn = client.create_project(ProjectName="fans")["ProjectArn"]
    ...     fake.calls
    ['CreateProject']

    """

    def __init__(
        self,
        *,
        s3_client: Any = None,
        epochs: int = 8,
        transition_seconds: float = 0.05,
        region: str = "us-east-1",
        account: str = "123456789012",
        page_size: int = 100,
        max_invalid_share: float = 0.2,
    ) -> None:
        self._s3 = s3_client
        self.page_size = page_size
        self.max_invalid_share = max_invalid_share
        self.epochs = epochs
        self.transition_seconds = transition_seconds
        self.region = region
        self.account = account
        self.calls: list[str] = []
        # name -> {"arn", "created", "status", "versions": {name: _Version}, "datasets": {arn: {...}}}
        self.projects: dict[str, dict[str, Any]] = {}
        self._throttle = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> FakeRekognition:
        """Serve on a free port of 127.0.0.1 in a background thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                target = self.headers.get("X-Amz-Target", "")
                status, payload = fake.handle(target, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", f"fake-{random.getrandbits(32):08x}")
                if status >= 400:
                    self.send_header("x-amzn-ErrorType", payload["__type"])
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for training threads."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=120)

    def __enter__(self) -> FakeRekognition:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: pass as ``endpoint_url``."""
        if self._server is None:
            raise RuntimeError("FakeRekognition is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def throttle_next(self, count: int) -> None:
        """Answer the next ``count`` DetectCustomLabels calls with ThrottlingException."""
        with self._lock:
            self._throttle = count

    def version_statuses(self) -> dict[str, str]:
        """Status of every model version, by ARN."""
        with self._lock:
            return {v.arn: v.status for p in self.projects.values() for v in p["versions"].values()}

    # -- protocol ---------------------------------------------------------------------------------
    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        service, _, operation = target.partition(".")
        if service != "RekognitionService":
            return 400, {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"}
        self.calls.append(operation)
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return 400, {"__type": "UnknownOperationException", "message": f"{operation} is not implemented"}
        try:
            request = json.loads(body or b"{}")
            with self._lock:
                return 200, handler(request)
        except ServiceError as exc:
            return exc.status, {"__type": exc.code, "Message": exc.message}

    def _project(self, arn: str) -> dict[str, Any]:
        for project in self.projects.values():
            if project["arn"] == arn:
                return project
        raise ServiceError("ResourceNotFoundException", f"project {arn} not found")

    def _version(self, arn: str) -> _Version:
        for project in self.projects.values():
            for version in project["versions"].values():
                if version.arn == arn:
                    found: _Version = version
                    return found
        raise ServiceError("ResourceNotFoundException", f"model {arn} not found")

    def _op_CreateProject(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = request["ProjectName"]
        if name in self.projects:
            raise ServiceError("ResourceInUseException", f"project {name} already exists")
        arn = f"arn:aws:rekognition:{self.region}:{self.account}:project/{name}/{int(time.time() * 1000)}"
        self.projects[name] = {"arn": arn, "created": time.time(), "status": "CREATED", "versions": {}, "datasets": {}}
        return {"ProjectArn": arn}

    def _page(self, request: dict[str, Any], items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        size = min(self.page_size, int(request.get("MaxResults") or self.page_size))
        start = int(request.get("NextToken") or 0)
        out: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            out["NextToken"] = str(start + size)
        return out

    def _op_DescribeProjects(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        names = request.get("ProjectNames")
        items = [
            {
                "ProjectArn": p["arn"],
                "CreationTimestamp": p["created"],
                "Status": p["status"],
                "Datasets": [
                    {
                        "DatasetArn": arn,
                        "DatasetType": d["type"],
                        "Status": d["status"],
                        "CreationTimestamp": d["created"],
                    }
                    for arn, d in p["datasets"].items()
                ],
            }
            for name, p in self.projects.items()
            if names is None or name in names
        ]
        return self._page(request, items, "ProjectDescriptions")

    def _dataset(self, arn: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for project in self.projects.values():
            if arn in project["datasets"]:
                return project, project["datasets"][arn]
        raise ServiceError("ResourceNotFoundException", f"dataset {arn} not found")

    def _op_CreateDataset(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        kind = request["DatasetType"]
        if any(d["type"] == kind for d in project["datasets"].values()):
            raise ServiceError("ResourceAlreadyExistsException", f"the project already has a {kind} dataset")
        source = request.get("DatasetSource", {}).get("GroundTruthManifest", {}).get("S3Object")
        arn = f"{project['arn'].rsplit('/', 1)[0]}/dataset/{kind.lower()}/{int(time.time() * 1000)}"
        project["datasets"][arn] = {"type": kind, "status": "CREATE_COMPLETE", "created": time.time(), "source": source}
        return {"DatasetArn": arn}

    def _op_DescribeDataset(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        _, dataset = self._dataset(request["DatasetArn"])
        return {"DatasetDescription": {"Status": dataset["status"], "CreationTimestamp": dataset["created"]}}

    def _op_DeleteDataset(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        arn = request["DatasetArn"]
        project, dataset = self._dataset(arn)
        if dataset["status"] == "DELETE_IN_PROGRESS":
            raise ServiceError("ResourceInUseException", f"dataset {arn} is being deleted")
        dataset["status"] = "DELETE_IN_PROGRESS"
        self._later(self.transition_seconds, lambda: project["datasets"].pop(arn, None))
        return {}

    def _op_CreateProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        name = request["VersionName"]
        if name in project["versions"]:
            raise ServiceError("ResourceInUseException", f"model version {name} already exists")
        if project["status"] != "CREATED":
            raise ServiceError("ResourceInUseException", f"the project is {project['status']}")
        has_manifests = "TrainingData" in request or "TestingData" in request
        if has_manifests and project["datasets"]:
            raise ServiceError(
                "InvalidParameterException",
                "TrainingData/TestingData given, but the project has datasets; "
                "the project must not have any associated datasets",
            )
        if has_manifests and ("TrainingData" not in request or "TestingData" not in request):
            raise ServiceError("InvalidParameterException", "TrainingData and TestingData must be given together")
        if not has_manifests:
            kinds = {d["type"]: d for d in project["datasets"].values()}
            if "TRAIN" not in kinds or "TEST" not in kinds:
                raise ServiceError("InvalidParameterException", "the project needs TRAIN and TEST datasets")
            request = {
                **request,
                "TrainingData": {"Assets": [{"GroundTruthManifest": {"S3Object": kinds["TRAIN"]["source"]}}]},
                "TestingData": {"Assets": [{"GroundTruthManifest": {"S3Object": kinds["TEST"]["source"]}}]},
            }
        try:
            train = request["TrainingData"]["Assets"][0]["GroundTruthManifest"]["S3Object"]
        except (KeyError, IndexError) as exc:
            raise ServiceError("InvalidParameterException", "TrainingData needs a Ground Truth manifest") from exc
        testing = request.get("TestingData", {})
        if not testing.get("AutoCreate") and not testing.get("Assets"):
            raise ServiceError("InvalidParameterException", "TestingData needs Assets or AutoCreate")
        arn = f"{project['arn'].rsplit('/', 1)[0]}/version/{name}/{int(time.time() * 1000)}"
        version = _Version(arn, name, project["arn"], time.time(), output=request["OutputConfig"])
        project["versions"][name] = version
        test = testing["Assets"][0]["GroundTruthManifest"]["S3Object"] if testing.get("Assets") else None
        thread = threading.Thread(target=self._train, args=(version, train, test), daemon=True)
        self._threads.append(thread)
        thread.start()
        return {"ProjectVersionArn": arn}

    def _op_DescribeProjectVersions(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        names = request.get("VersionNames")
        out = []
        for version in project["versions"].values():
            if names is not None and version.name not in names:
                continue
            item: dict[str, Any] = {
                "ProjectVersionArn": version.arn,
                "CreationTimestamp": version.created,
                "Status": version.status,
                "StatusMessage": version.status_message,
                "OutputConfig": version.output,
            }
            if version.min_units is not None:
                item["MinInferenceUnits"] = version.min_units
            if version.f1 is not None:
                item["EvaluationResult"] = {"F1Score": version.f1}
            out.append(item)
        return self._page(request, out, "ProjectVersionDescriptions")

    def _later(self, delay: float, fn: Callable[[], object]) -> None:
        def run() -> None:
            time.sleep(delay)
            with self._lock:
                fn()

        threading.Thread(target=run, daemon=True).start()

    def _op_StartProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        version = self._version(request["ProjectVersionArn"])
        if version.status not in ("TRAINING_COMPLETED", "STOPPED"):
            raise ServiceError("ResourceInUseException", f"cannot start a model that is {version.status}")
        version.status, version.min_units = "STARTING", int(request["MinInferenceUnits"])
        version.status_message = "The model is starting."

        def running() -> None:
            if version.status == "STARTING":
                version.status, version.status_message = "RUNNING", "The model is running."

        self._later(self.transition_seconds, running)
        return {"Status": "STARTING"}

    def _op_StopProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        version = self._version(request["ProjectVersionArn"])
        if version.status != "RUNNING":  # the API stops a running model; STARTING is refused
            raise ServiceError("ResourceInUseException", f"cannot stop a model that is {version.status}")
        version.status, version.status_message = "STOPPING", "The model is stopping."

        def stopped() -> None:
            version.status, version.status_message = "STOPPED", "The model is stopped."

        self._later(self.transition_seconds, stopped)
        return {"Status": "STOPPING"}

    def _op_DetectCustomLabels(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if self._throttle > 0:
            self._throttle -= 1
            raise ServiceError("ThrottlingException", "Rate exceeded")
        version = self._version(request["ProjectVersionArn"])
        if version.status != "RUNNING":
            raise ServiceError("ResourceNotReadyException", f"the model is {version.status}, not RUNNING")
        image = request.get("Image", {})
        if "Bytes" in image:
            data = base64.b64decode(image["Bytes"])
        elif "S3Object" in image:
            data = self._read_s3(image["S3Object"]["Bucket"], image["S3Object"]["Name"])
        else:
            raise ServiceError("InvalidParameterException", "Image needs Bytes or S3Object")
        try:
            pixels = decode_png(data)
        except Exception as exc:
            raise ServiceError("InvalidImageFormatException", "the image is not a PNG or JPEG") from exc
        problem = image_problem(*pixels.shape[:2])
        if problem is not None:
            raise ServiceError("InvalidImageFormatException", problem)
        if version.image_shape is not None and pixels.shape != version.image_shape:
            pixels = _resize(pixels, version.image_shape)  # the service resizes; our CNN has one input size
        with version.lock:
            p = float(np.asarray(version.model(pixels[None, :, :, None] / np.float32(255.0), training=False))[0, 0])
        minimum = float(request.get("MinConfidence", 50.0))
        confidences = sorted([(100.0 * p, "abnormal"), (100.0 * (1 - p), "normal")], reverse=True)
        labels = [{"Name": name, "Confidence": c} for c, name in confidences if c >= minimum]
        return {"CustomLabels": labels[: int(request.get("MaxResults", 1000))]}

    def _op_DeleteProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        version = self._version(request["ProjectVersionArn"])
        if version.status in ("RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS", "DELETING"):
            raise ServiceError("ResourceInUseException", f"cannot delete a model that is {version.status}")
        version.status, version.status_message = "DELETING", "The model is being deleted."
        versions = self._project(version.project)["versions"]
        self._later(self.transition_seconds, lambda: versions.pop(version.name, None))  # asynchronous, as AWS
        return {"Status": "DELETING"}

    def _op_DeleteProject(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        if project["versions"]:  # DELETING versions count until they are gone
            raise ServiceError("ResourceInUseException", "delete the project's model versions first")
        project["status"] = "DELETING"
        name = next(n for n, p in self.projects.items() if p is project)
        self._later(self.transition_seconds, lambda: self.projects.pop(name, None))
        return {"Status": "DELETING"}

    # -- the model ---------------------------------------------------------------------------------
    def _read_s3(self, bucket: str, key: str) -> bytes:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:
            raise ServiceError("InvalidS3ObjectException", f"cannot read s3://{bucket}/{key}") from exc

    def _load(self, manifest: dict[str, Any], shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images (resized to ``shape``, default the first valid image's) and labels; invalid rows dropped."""
        try:
            text = self._read_s3(manifest["Bucket"], manifest["Name"]).decode()
        except ServiceError as exc:
            raise ServiceError("InvalidS3ObjectException", "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT") from exc
        entries = read_manifest(f"s3://{manifest['Bucket']}/{manifest['Name']}", text=text)
        images, labels, problems = [], [], []
        for entry in entries:
            bucket, _, key = entry.source_ref[5:].partition("/")
            try:
                pixels = decode_png(self._read_s3(bucket, key))
            except ServiceError as exc:
                problems.append(exc.message)
                continue
            except Exception:
                problems.append(f"{entry.source_ref}: not a PNG or JPEG image")
                continue
            problem = image_problem(*pixels.shape[:2])
            if problem is not None:
                problems.append(f"{entry.source_ref}: {problem}")
                continue
            shape = shape or (pixels.shape[0], pixels.shape[1])
            images.append(_resize(pixels, shape))
            labels.append(1 if entry.class_name == "abnormal" else 0)
        if not images or len(problems) > self.max_invalid_share * len(entries):
            detail = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "")
            raise ServiceError(
                "InvalidParameterException",
                f"ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST: {len(problems)} of {len(entries)} rows invalid ({detail})",
            )
        return np.stack(images)[..., None] / np.float32(255.0), np.array(labels)

    def _train(self, version: _Version, train: dict[str, Any], test: dict[str, Any] | None) -> None:
        try:
            x, y = self._load(train)
            if len(set(y.tolist())) < 2:
                raise ServiceError("InvalidParameterException", "the training dataset needs at least two labels")
            if test is not None:
                x_test, y_test = self._load(test, (x.shape[1], x.shape[2]))
            else:  # AutoCreate: the service holds out 20 % of the training images
                order = np.random.default_rng(0).permutation(len(x))
                cut = max(1, len(x) // 5)
                x_test, y_test, x, y = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
            import keras

            from soundanomaly.detectors.cnn import build_cnn

            keras.utils.set_random_seed(0)
            model = build_cnn(x.shape[1], x.shape[2], learning_rate=3e-3)
            model.fit(x, y.astype(np.float32), epochs=self.epochs, batch_size=8, verbose=0)
            predicted = (np.asarray(model(x_test, training=False))[:, 0] >= 0.5).astype(int)
            tp = int(np.sum((predicted == 1) & (y_test == 1)))
            precision = tp / max(1, int(predicted.sum()))
            recall = tp / max(1, int(y_test.sum()))
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            with self._lock:
                version.model, version.image_shape, version.f1 = model, (x.shape[1], x.shape[2]), round(f1, 4)
                version.status, version.status_message = "TRAINING_COMPLETED", "The model is ready to run."
        except ServiceError as exc:
            with self._lock:
                version.status, version.status_message = "TRAINING_FAILED", exc.message
        except Exception as exc:  # the service reports any failure as a status message
            with self._lock:
                version.status, version.status_message = "TRAINING_FAILED", f"Internal failure: {exc}"
