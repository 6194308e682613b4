"""RekognitionDetector against the local Custom Labels server, S3 on moto's server, real boto3 clients.

Clips here last 2.2 s: their spectrogram images are 64 x 69 pixels, inside
Custom Labels' limits (64 to 4096 pixels a side); the 2.0 s clips of the
shared ``tiny`` fixture make 64 x 63 images, which AWS refuses (see
test_too_small_images_are_refused_before_anything_is_uploaded).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("moto")

import boto3

from soundanomaly.backends.rekognition import CustomLabels
from soundanomaly.datasets import MIMII, synthetic
from soundanomaly.detectors import RekognitionDetector, load_model
from soundanomaly.exceptions import BackendError, JobFailedError, ModelFormatError, ParameterError, ThrottlingError
from soundanomaly.manifest import read_manifest
from soundanomaly.testing import FakeRekognition, aws_environment

pytestmark = [pytest.mark.aws, pytest.mark.tf]
BUCKET = "fan-images"


@pytest.fixture(scope="module")
def aws() -> Iterator[SimpleNamespace]:
    with aws_environment(), FakeRekognition(epochs=40, transition_seconds=0.02) as fake:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield SimpleNamespace(fake=fake)


@pytest.fixture(autouse=True)
def no_model_left_running(aws: SimpleNamespace) -> Iterator[None]:
    yield
    statuses = aws.fake.version_statuses()
    assert not [arn for arn, status in statuses.items() if status in ("RUNNING", "STARTING")], statuses


def _detector(aws: SimpleNamespace, **kwargs: Any) -> RekognitionDetector:
    params = {
        "project_name": "fans",
        "bucket": BUCKET,
        "endpoint_url": aws.fake.url,
        "poll_seconds": 0.02,
        "progress": False,
    }
    return RekognitionDetector(**{**params, **kwargs})


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> MIMII:
    """2 ids x (8 normal + 4 abnormal) synthetic clips of 2.2 s: 64 x 69 pixel images."""
    root = tmp_path_factory.mktemp("clips")
    return MIMII(synthetic.write_dataset(root, ids=[0, 2], n_normal=8, n_abnormal=4, duration=2.2, seed=1))


@pytest.fixture(scope="module")
def trained(aws: SimpleNamespace, clips: MIMII) -> RekognitionDetector:
    return _detector(aws, version_name="v1").fit(clips)


def test_fit_uploads_images_and_manifest_and_trains(trained: RekognitionDetector, clips: MIMII) -> None:
    s3 = boto3.client("s3")
    manifest = s3.get_object(Bucket=BUCKET, Key="soundanomaly/rekognition/manifests/v1-train.manifest")["Body"].read()
    entries = read_manifest("s3://fan-images/train.manifest", text=manifest.decode())
    assert len(entries) == len(clips)
    assert sorted(e.class_name for e in entries).count("abnormal") == int(clips.labels.sum())
    first = entries[0].source_ref[len(f"s3://{BUCKET}/") :]
    assert s3.get_object(Bucket=BUCKET, Key=first)["ContentType"] == "image/png"
    assert trained.version_arn_.split("/version/")[1].startswith("v1/")
    assert trained.evaluation_f1_ is not None and 0.0 <= trained.evaluation_f1_ <= 1.0


def test_project_creation_is_idempotent(aws: SimpleNamespace, trained: RekognitionDetector, clips: MIMII) -> None:
    again = _detector(aws, version_name="v2").fit(clips)
    assert again.project_arn_ == trained.project_arn_
    assert len(aws.fake.projects["fans"]["versions"]) == 2
    assert aws.fake.calls.count("CreateProject") == 2
    assert "DescribeProjects" in aws.fake.calls  # the second found the project by name


def test_full_lifecycle_start_score_stop(aws: SimpleNamespace, trained: RekognitionDetector, clips: MIMII) -> None:
    with trained.running(min_inference_units=1) as detector:
        assert aws.fake.version_statuses()[trained.version_arn_] == "RUNNING"
        scores = detector.score(clips)
        labels = detector.predict(clips)
        assert re.fullmatch(r"\d+\.\d{3} h x 1 unit\(s\) ~ \$\d+\.\d{2}", detector.cost_estimate())
    assert aws.fake.version_statuses()[trained.version_arn_] == "STOPPED"
    assert scores.shape == (len(clips),)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(labels, (scores >= 0.5).astype(np.int8))  # the reference's 50 % rule
    assert np.mean(labels == clips.labels) >= 0.75  # a real model answered, trained on these images


def test_score_images_already_in_s3(aws: SimpleNamespace, trained: RekognitionDetector, clips: MIMII) -> None:
    s3 = boto3.client("s3")
    text = s3.get_object(Bucket=BUCKET, Key="soundanomaly/rekognition/manifests/v1-train.manifest")["Body"].read()
    uris = [e.source_ref for e in read_manifest("train.manifest", text=text.decode())]
    with trained.running():
        from_s3 = trained.score_images(uris[:6])
        from_clips = trained.score(clips[:6])
    np.testing.assert_allclose(from_s3, from_clips)  # the same images, read by the service from S3


def test_scoring_needs_a_running_model(trained: RekognitionDetector, clips: MIMII) -> None:
    with pytest.raises(BackendError, match="not RUNNING"):
        trained.score(clips)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_model_stopped_after_an_exception(
    aws: SimpleNamespace, trained: RekognitionDetector, error: BaseException
) -> None:
    def use() -> None:
        with trained.running():
            raise error

    with pytest.raises(type(error)):
        use()
    assert aws.fake.version_statuses()[trained.version_arn_] == "STOPPED"


def test_throttled_detect_calls_are_retried(aws: SimpleNamespace, trained: RekognitionDetector, clips: MIMII) -> None:
    with trained.running():
        baseline = trained.score(clips[:4])
        aws.fake.throttle_next(6)  # more than botocore's own retries absorb alone
        np.testing.assert_allclose(trained.score(clips[:4]), baseline)
        aws.fake.throttle_next(10_000)
        trained.client.max_retries = 1
        try:
            with pytest.raises(ThrottlingError, match="throttled by AWS after retries"):
                trained.score(clips[:1])
        finally:
            trained.client.max_retries = 6
            aws.fake.throttle_next(0)


def test_training_failure_reports_the_status_message(aws: SimpleNamespace, clips: MIMII) -> None:
    detector = _detector(aws, project_name="broken", version_name="v1")
    s3 = boto3.client("s3")
    original = detector._upload_images

    def upload_then_lose_some(*args: Any, **kwargs: Any) -> Any:
        entries = original(*args, **kwargs)
        for entry in entries[:8]:  # a third of the images the manifest names are gone
            s3.delete_object(Bucket=BUCKET, Key=entry.source_ref[len(f"s3://{BUCKET}/") :])
        return entries

    detector._upload_images = upload_then_lose_some  # type: ignore[method-assign]
    with pytest.raises(JobFailedError, match="TOO_MANY_INVALID_ROWS") as info:
        detector.fit(clips)
    assert "8 of 24 rows invalid" in info.value.failure_reason
    assert "cannot read s3://" in info.value.failure_reason
    detector.cleanup()


def test_a_few_missing_images_do_not_fail_training(aws: SimpleNamespace, clips: MIMII) -> None:
    """AWS drops invalid rows and fails only above a share of them (item 15 of issue #12)."""
    detector = _detector(aws, project_name="lossy", version_name="v1")
    s3 = boto3.client("s3")
    original = detector._upload_images

    def upload_then_lose_one(*args: Any, **kwargs: Any) -> Any:
        entries = original(*args, **kwargs)
        s3.delete_object(Bucket=BUCKET, Key=entries[0].source_ref[len(f"s3://{BUCKET}/") :])
        return entries

    detector._upload_images = upload_then_lose_one  # type: ignore[method-assign]
    detector.fit(clips.filter(ids=0))  # 12 images, 1 lost: 8 % invalid
    assert aws.fake.version_statuses()[detector.version_arn_] == "TRAINING_COMPLETED"
    detector.cleanup()


def test_requests_are_validated_against_the_service_model(aws: SimpleNamespace) -> None:
    from botocore.exceptions import ParamValidationError

    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    with pytest.raises(ParamValidationError):
        client.start_project_version(ProjectVersionArn="arn:x", MinInferenceUnits=0)
    with pytest.raises(ParameterError, match="min_inference_units"):
        _detector(aws).client.start("arn:aws:rekognition:us-east-1:1:project/p/version/v/1", min_inference_units=0)


def test_too_small_images_are_refused_before_anything_is_uploaded(aws: SimpleNamespace, tiny: MIMII) -> None:
    """2.0 s clips make 64 x 63 pixel images: AWS refuses them, so fit stops before any upload or call."""
    calls = len(aws.fake.calls)
    s3 = boto3.client("s3")
    before = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    with pytest.raises(ParameterError, match="63 x 64 pixels; Custom Labels needs 64 to 4096"):
        _detector(aws, project_name="small").fit(tiny)
    assert len(aws.fake.calls) == calls
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == before


def test_the_fake_enforces_the_image_limits(aws: SimpleNamespace, trained: RekognitionDetector) -> None:
    from soundanomaly.features.images import encode_png

    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    with trained.running():
        for shape in [(64, 63), (64, 1300), (4097, 64)]:
            image = encode_png(np.zeros(shape, dtype=np.uint8))
            with pytest.raises(client.exceptions.InvalidImageFormatException):
                client.detect_custom_labels(ProjectVersionArn=trained.version_arn_, Image={"Bytes": image})
        # another (valid) size than the training images: the service resizes
        labels = client.detect_custom_labels(
            ProjectVersionArn=trained.version_arn_, Image={"Bytes": encode_png(np.zeros((128, 200), np.uint8))}
        )
        assert {label["Name"] for label in labels["CustomLabels"]} <= {"normal", "abnormal"}


def test_project_with_datasets_is_refused_before_upload_and_cleaned_up(aws: SimpleNamespace, clips: MIMII) -> None:
    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    project = client.create_project(ProjectName="console")["ProjectArn"]
    client.create_dataset(ProjectArn=project, DatasetType="TRAIN")
    raw = CustomLabels("console", endpoint_url=aws.fake.url, poll_seconds=0.02, progress=False)
    with pytest.raises(BackendError, match="must not have any associated datasets"):  # the fake enforces AWS's rule
        raw.call(
            "training",
            "create_project_version",
            ProjectArn=project,
            VersionName="v1",
            OutputConfig={"S3Bucket": BUCKET, "S3KeyPrefix": "out"},
            TrainingData={"Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Name": "m"}}}]},
            TestingData={"AutoCreate": True},
        )
    s3 = boto3.client("s3")
    before = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    with pytest.raises(ParameterError, match="has datasets"):
        _detector(aws, project_name="console").fit(clips)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == before
    raw.delete()  # datasets first, then the project
    assert "console" not in aws.fake.projects


def test_stop_waits_for_a_starting_model_and_leaves_other_statuses_alone(
    aws: SimpleNamespace, trained: RekognitionDetector
) -> None:
    labels = trained.client
    aws.fake.transition_seconds = 0.3
    try:
        labels.call("starting", "start_project_version", ProjectVersionArn=trained.version_arn_, MinInferenceUnits=1)
        assert aws.fake.version_statuses()[trained.version_arn_] == "STARTING"
        assert labels.stop(trained.version_arn_) == "STOPPED"  # waited for RUNNING, then stopped
    finally:
        aws.fake.transition_seconds = 0.02
    assert aws.fake.calls[-1] == "DescribeProjectVersions"
    calls = len(aws.fake.calls)
    assert labels.stop(trained.version_arn_, timeout_seconds=0.0) == "STOPPED"  # nothing to stop, no waiting
    version = next(
        v for p in aws.fake.projects.values() for v in p["versions"].values() if v.arn == trained.version_arn_
    )
    version.status = "EXPIRED"
    try:
        assert labels.stop(trained.version_arn_, timeout_seconds=0.0) == "EXPIRED"
    finally:
        version.status = "STOPPED"
    assert "StopProjectVersion" not in aws.fake.calls[calls:]


def test_concurrency_scales_with_inference_units(trained: RekognitionDetector) -> None:
    with trained.running(min_inference_units=2):
        assert trained.concurrency() == 10
    trained.max_concurrency = 3
    try:
        assert trained.concurrency() == 3
    finally:
        trained.max_concurrency = None


def test_bucket_in_another_region_is_refused(aws: SimpleNamespace, clips: MIMII) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="far-away", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(ParameterError, match="'far-away' is in eu-west-1, Rekognition in us-east-1"):
        _detector(aws, project_name="far", bucket="far-away").fit(clips)


def test_s3_and_region_errors_are_mapped(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = CustomLabels("p", endpoint_url=aws.fake.url, progress=False)
    with pytest.raises(BackendError, match="NoSuchBucket") as info:
        labels.put_object("no-such-bucket", "k", b"x")
    assert info.value.__cause__ is not None
    with monkeypatch.context() as env:
        env.delenv("AWS_DEFAULT_REGION")
        env.setenv("AWS_CONFIG_FILE", "/nonexistent")
        with pytest.raises(ParameterError, match="no AWS region"):
            CustomLabels("p", progress=False).describe_version("arn:aws:rekognition:us-east-1:1:project/p/version/v/1")


class _Listener:
    """An HTTP server on 127.0.0.1 that records every request and answers 400."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                listener.requests.append(self.headers.get("X-Amz-Target", self.path))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b'{"__type": "AccessDeniedException", "Message": "no"}'
                self.send_response(400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_model_folder_never_chooses_the_endpoint(
    aws: SimpleNamespace, trained: RekognitionDetector, clips: MIMII, tmp_path: Path
) -> None:
    """Issue #11 item 10: an endpoint_url/region in a model folder opens no connection unless the caller says so."""
    listener = _Listener()
    try:
        folder = trained.save(tmp_path / "model")
        manifest = folder / "manifest.json"
        text = manifest.read_text().replace(aws.fake.url, listener.url)
        manifest.write_text(text.replace('"region": null', '"region": "eu-west-1"'))
        loaded = load_model(folder)
        assert isinstance(loaded, RekognitionDetector)
        assert (loaded.endpoint_url, loaded.region) == (None, None)
        # where requests go is now the caller's configuration (here moto's server, which knows no such model)
        with pytest.raises(BackendError):
            loaded.score(clips[:1])
        assert listener.requests == []
        # the caller's own endpoint is used; trust_endpoints=True uses the folder's (here: the listener)
        assert RekognitionDetector.load(folder, endpoint_url=aws.fake.url).client.rekognition.meta.endpoint_url == (
            aws.fake.url
        )
        trusting = RekognitionDetector.load(folder, trust_endpoints=True)
        with pytest.raises(BackendError):
            trusting.score(clips[:1])
        assert listener.requests  # the listener works: only trust made it receive a request
    finally:
        listener.close()


def test_a_model_folder_with_a_bad_arn_is_refused(trained: RekognitionDetector, tmp_path: Path) -> None:
    folder = trained.save(tmp_path / "model")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace(trained.version_arn_, "https://evil.example/x"))
    with pytest.raises(ModelFormatError, match="not a Rekognition model ARN"):
        RekognitionDetector.load(folder, endpoint_url="http://127.0.0.1:9")


def test_save_load_and_cleanup_last(aws: SimpleNamespace, trained: RekognitionDetector, tmp_path: Any) -> None:
    folder = trained.save(tmp_path / "rekognition")
    loaded = RekognitionDetector.load(folder, endpoint_url=aws.fake.url)
    assert isinstance(loaded, RekognitionDetector)
    assert loaded.version_arn_ == trained.version_arn_
    assert len(aws.fake.projects["fans"]["versions"]) == 2  # v1 and v2 (test_project_creation_is_idempotent)
    aws.fake.page_size = 1  # DescribeProjectVersions answers one version per page
    try:
        loaded.cleanup()
    finally:
        aws.fake.page_size = 100
    # versions are deleted asynchronously and DeleteProject is refused while any remain: cleanup waited
    assert "fans" not in aws.fake.projects
    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    assert client.describe_projects(ProjectNames=["fans"])["ProjectDescriptions"] == []
