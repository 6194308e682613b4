"""RekognitionDetector against the local Custom Labels server, S3 on moto's server, real boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("moto")

import boto3

from soundanomaly.datasets import MIMII
from soundanomaly.detectors import RekognitionDetector, load
from soundanomaly.exceptions import BackendError, JobFailedError, ParameterError, ThrottlingError
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
def trained(aws: SimpleNamespace, tiny: MIMII) -> RekognitionDetector:
    return _detector(aws, version_name="v1").fit(tiny)


def test_fit_uploads_images_and_manifest_and_trains(trained: RekognitionDetector, tiny: MIMII) -> None:
    s3 = boto3.client("s3")
    manifest = s3.get_object(Bucket=BUCKET, Key="soundanomaly/rekognition/manifests/v1-train.manifest")["Body"].read()
    entries = read_manifest("s3://fan-images/train.manifest", text=manifest.decode())
    assert len(entries) == len(tiny)
    assert sorted(e.class_name for e in entries).count("abnormal") == int(tiny.labels.sum())
    first = entries[0].source_ref[len(f"s3://{BUCKET}/") :]
    assert s3.get_object(Bucket=BUCKET, Key=first)["ContentType"] == "image/png"
    assert trained.version_arn_.split("/version/")[1].startswith("v1/")
    assert trained.evaluation_f1_ is not None and 0.0 <= trained.evaluation_f1_ <= 1.0


def test_project_creation_is_idempotent(aws: SimpleNamespace, trained: RekognitionDetector, tiny: MIMII) -> None:
    again = _detector(aws, version_name="v2").fit(tiny)
    assert again.project_arn_ == trained.project_arn_
    assert len(aws.fake.projects["fans"]["versions"]) == 2
    assert aws.fake.calls.count("CreateProject") == 2
    assert "DescribeProjects" in aws.fake.calls  # the second found the project by name


def test_full_lifecycle_start_score_stop(aws: SimpleNamespace, trained: RekognitionDetector, tiny: MIMII) -> None:
    with trained.running(min_inference_units=1) as detector:
        assert aws.fake.version_statuses()[trained.version_arn_] == "RUNNING"
        scores = detector.score(tiny)
        labels = detector.predict(tiny)
        assert detector.cost_estimate().startswith("0.000 h x 1 unit(s) ~ $")
    assert aws.fake.version_statuses()[trained.version_arn_] == "STOPPED"
    assert scores.shape == (len(tiny),)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(labels, (scores >= 0.5).astype(np.int8))  # the reference's 50 % rule
    assert np.mean(labels == tiny.labels) >= 0.75  # a real model answered, trained on these images


def test_score_images_already_in_s3(aws: SimpleNamespace, trained: RekognitionDetector, tiny: MIMII) -> None:
    s3 = boto3.client("s3")
    text = s3.get_object(Bucket=BUCKET, Key="soundanomaly/rekognition/manifests/v1-train.manifest")["Body"].read()
    uris = [e.source_ref for e in read_manifest("train.manifest", text=text.decode())]
    with trained.running():
        from_s3 = trained.score_images(uris[:6])
        from_clips = trained.score(tiny[:6])
    np.testing.assert_allclose(from_s3, from_clips)  # the same images, read by the service from S3


def test_scoring_needs_a_running_model(trained: RekognitionDetector, tiny: MIMII) -> None:
    with pytest.raises(BackendError, match="not RUNNING"):
        trained.score(tiny)


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


def test_throttled_detect_calls_are_retried(aws: SimpleNamespace, trained: RekognitionDetector, tiny: MIMII) -> None:
    with trained.running():
        baseline = trained.score(tiny[:4])
        aws.fake.throttle_next(6)  # more than botocore's own retries absorb alone
        np.testing.assert_allclose(trained.score(tiny[:4]), baseline)
        aws.fake.throttle_next(10_000)
        trained.client.max_retries = 1
        try:
            with pytest.raises(ThrottlingError, match="throttled by AWS after retries"):
                trained.score(tiny[:1])
        finally:
            trained.client.max_retries = 6
            aws.fake.throttle_next(0)


def test_training_failure_reports_the_status_message(aws: SimpleNamespace, tiny: MIMII) -> None:
    detector = _detector(aws, project_name="broken", version_name="v1")
    s3 = boto3.client("s3")
    original = detector._upload_images

    def upload_then_lose_one(*args: Any, **kwargs: Any) -> Any:
        entries = original(*args, **kwargs)
        key = entries[0].source_ref[len(f"s3://{BUCKET}/") :]
        s3.delete_object(Bucket=BUCKET, Key=key)  # an image the manifest names is gone
        return entries

    detector._upload_images = upload_then_lose_one  # type: ignore[method-assign]
    with pytest.raises(JobFailedError, match="cannot read s3://") as info:
        detector.fit(tiny)
    assert "InvalidS3Object" not in info.value.failure_reason or "cannot read" in info.value.failure_reason
    detector.cleanup()


def test_save_load_and_cleanup(aws: SimpleNamespace, trained: RekognitionDetector, tmp_path: Any) -> None:
    loaded = load(trained.save(tmp_path / "rekognition"))
    assert isinstance(loaded, RekognitionDetector)
    assert loaded.version_arn_ == trained.version_arn_
    loaded.cleanup()
    assert "fans" not in aws.fake.projects
    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    assert client.describe_projects(ProjectNames=["fans"])["ProjectDescriptions"] == []


def test_requests_are_validated_against_the_service_model(aws: SimpleNamespace) -> None:
    from botocore.exceptions import ParamValidationError

    client = boto3.client("rekognition", endpoint_url=aws.fake.url)
    with pytest.raises(ParamValidationError):
        client.start_project_version(ProjectVersionArn="arn:x", MinInferenceUnits=0)
    with pytest.raises(ParameterError, match="min_inference_units"):
        _detector(aws).client.start("arn:aws:rekognition:us-east-1:1:project/p/version/v/1", min_inference_units=0)
