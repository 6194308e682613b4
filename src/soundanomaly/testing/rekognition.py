"""A local stand-in for Amazon Rekognition Custom Labels that speaks the real wire protocol.

moto has no Custom Labels lifecycle, so this server implements it: JSON 1.1
requests (``X-Amz-Target: RekognitionService.<Operation>``) on 127.0.0.1,
the service's state machine (TRAINING_IN_PROGRESS → TRAINING_COMPLETED or
TRAINING_FAILED; STARTING → RUNNING → STOPPING → STOPPED), its error codes,
manifests and images read from S3 (moto's server, through boto3), and a real
model: training fits :func:`soundanomaly.detectors.cnn.build_cnn` on the
manifest's images and ``DetectCustomLabels`` answers with its predictions.

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
        How long STARTING and STOPPING last.
    region, account : str
        Used in ARNs.

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
    ) -> None:
        self._s3 = s3_client
        self.epochs = epochs
        self.transition_seconds = transition_seconds
        self.region = region
        self.account = account
        self.calls: list[str] = []
        self.projects: dict[str, dict[str, Any]] = {}  # name -> {"arn", "created", "versions": {name: _Version}}
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
        self.projects[name] = {"arn": arn, "created": time.time(), "versions": {}}
        return {"ProjectArn": arn}

    def _op_DescribeProjects(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        names = request.get("ProjectNames")
        return {
            "ProjectDescriptions": [
                {"ProjectArn": p["arn"], "CreationTimestamp": p["created"], "Status": "CREATED"}
                for name, p in self.projects.items()
                if names is None or name in names
            ]
        }

    def _op_CreateProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        name = request["VersionName"]
        if name in project["versions"]:
            raise ServiceError("ResourceInUseException", f"model version {name} already exists")
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
        return {"ProjectVersionDescriptions": out}

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
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
        if version.status not in ("RUNNING", "STARTING"):
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
        if version.image_shape is not None and pixels.shape != version.image_shape:
            raise ServiceError(
                "InvalidParameterException", f"image is {pixels.shape}, model expects {version.image_shape}"
            )
        with version.lock:
            p = float(np.asarray(version.model(pixels[None, :, :, None] / np.float32(255.0), training=False))[0, 0])
        minimum = float(request.get("MinConfidence", 50.0))
        confidences = sorted([(100.0 * p, "abnormal"), (100.0 * (1 - p), "normal")], reverse=True)
        labels = [{"Name": name, "Confidence": c} for c, name in confidences if c >= minimum]
        return {"CustomLabels": labels[: int(request.get("MaxResults", 1000))]}

    def _op_DeleteProjectVersion(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        version = self._version(request["ProjectVersionArn"])
        if version.status in ("RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS"):
            raise ServiceError("ResourceInUseException", f"cannot delete a model that is {version.status}")
        del self._project(version.project)["versions"][version.name]
        return {"Status": "DELETING"}

    def _op_DeleteProject(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        project = self._project(request["ProjectArn"])
        if project["versions"]:
            raise ServiceError("ResourceInUseException", "delete the project's model versions first")
        del self.projects[next(n for n, p in self.projects.items() if p is project)]
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

    def _load(self, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        text = self._read_s3(manifest["Bucket"], manifest["Name"]).decode()
        entries = read_manifest(f"s3://{manifest['Bucket']}/{manifest['Name']}", text=text)
        images, labels = [], []
        for entry in entries:
            bucket, _, key = entry.source_ref[5:].partition("/")
            images.append(decode_png(self._read_s3(bucket, key)))
            labels.append(1 if entry.class_name == "abnormal" else 0)
        if len({image.shape for image in images}) != 1:
            raise ServiceError("InvalidParameterException", "images differ in size")
        return np.stack(images)[..., None] / np.float32(255.0), np.array(labels)

    def _train(self, version: _Version, train: dict[str, Any], test: dict[str, Any] | None) -> None:
        try:
            x, y = self._load(train)
            if len(set(y.tolist())) < 2:
                raise ServiceError("InvalidParameterException", "the training dataset needs at least two labels")
            if test is not None:
                x_test, y_test = self._load(test)
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
