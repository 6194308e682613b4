"""SageMaker backend against moto's server on 127.0.0.1, with real boto3/sagemaker clients.

moto marks training and transform jobs Completed without running them, so
these tests play the container's part (soundanomaly.testing) and then let the
library continue on its normal path. After every test, no endpoint, endpoint
config, model or running training job may remain.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("moto")
pytest.importorskip("sagemaker")

import boto3

from soundanomaly.backends._aws import aws_call as _call
from soundanomaly.backends.sagemaker import SageMakerBackend, _model_trainer, pack_requests
from soundanomaly.datasets import MIMII
from soundanomaly.detectors import AutoencoderDetector, load_model
from soundanomaly.exceptions import (
    BackendError,
    BackendTimeoutError,
    JobFailedError,
    ParameterError,
    ThrottlingError,
)
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.testing import (
    aws_environment,
    play_training_job,
    play_transform_job,
    queue_endpoint_results,
)

pytestmark = [pytest.mark.aws, pytest.mark.tf]
# A fixed threshold: these tests compare cloud and local training, not threshold calibration on 8 clips.
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def aws() -> Iterator[SimpleNamespace]:
    with aws_environment() as url:
        role = boto3.client("iam").create_role(RoleName="soundanomaly-sm", AssumeRolePolicyDocument=json.dumps(TRUST))
        boto3.client("s3").create_bucket(Bucket="soundanomaly-test")
        yield SimpleNamespace(url=url, role=role["Role"]["Arn"], bucket="soundanomaly-test")


@pytest.fixture(autouse=True)
def nothing_left_running(aws: SimpleNamespace) -> Iterator[None]:
    yield
    sm = boto3.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"] == []


def _moto_job(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends["123456789012"]["us-east-1"].training_jobs[name]


class ContainerBackend(SageMakerBackend):
    """Plays the training and transform containers, then continues as the library does."""

    reconstruct: Any = None
    container_log = ""

    def wait_for_training(self, job_name: str) -> dict[str, Any]:
        self.container_log = play_training_job(job_name, boto_session=self.boto_session)
        return super().wait_for_training(job_name)

    def wait_for_transform(self, job_name: str) -> dict[str, Any]:
        play_transform_job(job_name, self.reconstruct, boto_session=self.boto_session)
        return super().wait_for_transform(job_name)


def _answer_stop_training_job(backend: SageMakerBackend) -> list[str]:
    """moto has no StopTrainingJob: answer it as the service does (the job becomes Stopped).

    botocore validates the request against the service model before the
    before-call hook answers it. Returns the names of the jobs stopped.
    """
    from botocore.awsrequest import AWSResponse

    stopped: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        stopped.append(params["TrainingJobName"])

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        _moto_job(stopped[-1]).training_job_status = "Stopped"
        return AWSResponse("http://127.0.0.1", 200, {}, None), {}

    events = backend.client("sagemaker").meta.events
    events.register("provide-client-params.sagemaker.StopTrainingJob", record)
    events.register("before-call.sagemaker.StopTrainingJob", answer)
    return stopped


def _backend(aws: SimpleNamespace, cls: type[SageMakerBackend] = ContainerBackend, **kwargs: Any) -> Any:
    return cls(role=aws.role, bucket=aws.bucket, poll_seconds=0.01, progress=False, **kwargs)


@pytest.fixture(scope="module")
def features(tiny: MIMII) -> dict[str, ClipFeatures]:
    extractor = LogMelFrames()
    return {
        "train": extractor.extract(tiny.filter(label="normal").paths[:8], progress=False),
        "test": extractor.extract(tiny.filter(ids=2).paths, progress=False),
    }


@pytest.fixture(scope="module")
def trained(aws: SimpleNamespace, features: dict[str, ClipFeatures]) -> AutoencoderDetector:
    backend = _backend(aws)
    detector = AutoencoderDetector(threshold=1.0, backend=backend, epochs=2, batch_size=64, seed=3)
    detector.fit(features["train"])
    detector.container_log = backend.container_log  # type: ignore[attr-defined]
    return detector


def test_training_job_runs_the_packaged_entry_script(trained: AutoencoderDetector, aws: SimpleNamespace) -> None:
    sm = boto3.client("sagemaker")
    name = trained.backend.last_job_name
    job = sm.describe_training_job(TrainingJobName=name)
    assert job["TrainingJobStatus"] == "Completed"
    assert job["ResourceConfig"]["InstanceType"] == "ml.p3.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert "tensorflow-training:2.16-gpu" in job["AlgorithmSpecification"]["TrainingImage"]
    hps = job["HyperParameters"]
    assert (hps["epochs"], hps["batch-size"], hps["learning-rate"], hps["n_mels"], hps["frames"]) == (
        "2",
        "64",
        "0.001",
        "64",
        "5",
    )
    channels = {c["ChannelName"] for c in job["InputDataConfig"]}
    assert {"train", "code"} <= channels
    # the container imported the staged copy of soundanomaly, not the installed one
    assert "sm-container-" in trained.container_log
    assert "/input/data/code/soundanomaly" in trained.container_log
    assert trained.model_data_ == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert len(trained.history_["loss"]) == 2


def test_cloud_training_equals_local_training(trained: AutoencoderDetector, features: dict[str, ClipFeatures]) -> None:
    local = AutoencoderDetector(threshold=1.0, epochs=2, batch_size=64, seed=3).fit(features["train"])
    np.testing.assert_allclose(trained.history_["loss"], local.history_["loss"], rtol=1e-4)
    np.testing.assert_allclose(trained.score(features["test"]), local.score(features["test"]), rtol=1e-4)


def test_endpoint_scores_equal_local_scores(
    trained: AutoencoderDetector, features: dict[str, ClipFeatures], aws: SimpleNamespace
) -> None:
    test = features["test"]
    max_bytes = 150_000  # force several requests
    parts = pack_requests(test.windows, max_bytes)
    assert len(parts) > 3
    queue_endpoint_results(
        aws.url, [json.dumps({"predictions": trained.reconstruct(test.windows[a:b]).tolist()}) for a, b, _ in parts]
    )
    with trained.deployed(instance_type="ml.c5.large") as endpoint:
        sm = boto3.client("sagemaker")
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint.endpoint.name)
        assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.large"
        endpoint.endpoint.max_bytes = max_bytes
        scores = endpoint.score(test)
        assert endpoint.endpoint.requests == len(parts)
    np.testing.assert_allclose(scores, trained.score(test), rtol=1e-6)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_endpoint_deleted_when_the_block_raises(trained: AutoencoderDetector, error: BaseException) -> None:
    seen = []

    def use_endpoint() -> None:
        with trained.deployed():
            seen.append(len(boto3.client("sagemaker").list_endpoints()["Endpoints"]))
            raise error

    with pytest.raises(type(error)):
        use_endpoint()
    assert seen == [1]  # it was running inside the block; nothing_left_running checks it is gone


def test_endpoint_deleted_when_scoring_fails(
    trained: AutoencoderDetector, features: dict[str, ClipFeatures], aws: SimpleNamespace
) -> None:
    queue_endpoint_results(aws.url, ['{"not": "predictions"}'])
    with pytest.raises(BackendError, match="unexpected response"), trained.deployed() as endpoint:
        endpoint.score(features["test"])


def test_batch_transform_scores_equal_local_scores(
    trained: AutoencoderDetector, features: dict[str, ClipFeatures]
) -> None:
    trained.backend.reconstruct = trained.reconstruct
    scores = trained.batch_score(features["test"], clips_per_file=5)
    np.testing.assert_allclose(scores, trained.score(features["test"]), rtol=1e-6)
    job = boto3.client("sagemaker").list_transform_jobs()["TransformJobSummaries"][0]
    assert job["TransformJobStatus"] == "Completed"


def test_batch_score_an_s3_prefix_of_clips(trained: AutoencoderDetector, tiny: MIMII, aws: SimpleNamespace) -> None:
    s3 = boto3.client("s3")
    clips = tiny.filter(ids=0)[:5]
    for i, record in enumerate(clips):
        s3.upload_file(record.path, aws.bucket, f"incoming/fan/{i:03d}.wav")
    trained.backend.reconstruct = trained.reconstruct
    scores = trained.batch_score(f"s3://{aws.bucket}/incoming/")  # clips read through s3fs
    np.testing.assert_allclose(scores, trained.score(clips), rtol=1e-6)


def test_training_failure_surfaces_failure_reason(aws: SimpleNamespace, features: dict[str, ClipFeatures]) -> None:
    class FailingContainer(SageMakerBackend):
        def wait_for_training(self, job_name: str) -> dict[str, Any]:
            job = _moto_job(job_name)
            job.training_job_status = "Failed"
            job.failure_reason = "AlgorithmError: ExecuteUserScriptError: out of memory"
            return super().wait_for_training(job_name)

    detector = AutoencoderDetector(threshold=1.0, backend=_backend(aws, FailingContainer), epochs=1)
    with pytest.raises(JobFailedError, match="out of memory") as info:
        detector.fit(features["train"])
    assert info.value.failure_reason == "AlgorithmError: ExecuteUserScriptError: out of memory"


def test_timeout_stops_the_job(aws: SimpleNamespace, features: dict[str, ClipFeatures]) -> None:
    class StuckContainer(SageMakerBackend):
        def wait_for_training(self, job_name: str) -> dict[str, Any]:
            _moto_job(job_name).training_job_status = "InProgress"
            return super().wait_for_training(job_name)

    backend = _backend(aws, StuckContainer, timeout_seconds=0.05)
    stopped = _answer_stop_training_job(backend)
    with pytest.raises(BackendTimeoutError, match="job stopped"):
        AutoencoderDetector(threshold=1.0, backend=backend, epochs=1).fit(features["train"])
    assert stopped == [backend.last_job_name]
    status = boto3.client("sagemaker").describe_training_job(TrainingJobName=backend.last_job_name)
    assert status["TrainingJobStatus"] == "Stopped"


def test_interrupted_wait_stops_the_job(aws: SimpleNamespace, features: dict[str, ClipFeatures]) -> None:
    class InterruptedWait(SageMakerBackend):
        def wait_for_training(self, job_name: str) -> dict[str, Any]:
            _moto_job(job_name).training_job_status = "InProgress"
            raise KeyboardInterrupt

    backend = _backend(aws, InterruptedWait)
    stopped = _answer_stop_training_job(backend)
    with pytest.raises(KeyboardInterrupt):
        AutoencoderDetector(threshold=1.0, backend=backend, epochs=1).fit(features["train"])
    assert stopped == [backend.last_job_name]
    status = boto3.client("sagemaker").describe_training_job(TrainingJobName=backend.last_job_name)
    assert status["TrainingJobStatus"] == "Stopped"


def test_existing_prefix_used_as_is_and_spot_options(aws: SimpleNamespace, features: dict[str, ClipFeatures]) -> None:
    uploader = _backend(aws)
    uri = uploader.upload_features(features["train"].windows)
    s3 = boto3.client("s3")
    before = s3.list_objects_v2(Bucket=aws.bucket, Prefix="soundanomaly/data/")["KeyCount"]
    backend = _backend(aws, train_data=uri, use_spot=True, max_runtime_seconds=1800, tags={"project": "fans"})
    detector = AutoencoderDetector(threshold=1.0, backend=backend, epochs=1, batch_size=64).fit(features["train"])
    assert s3.list_objects_v2(Bucket=aws.bucket, Prefix="soundanomaly/data/")["KeyCount"] == before
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=backend.last_job_name)
    train_channel = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "train")
    assert train_channel["DataSource"]["S3DataSource"]["S3Uri"] == uri
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    # each job checkpoints to a folder of its own (a shared folder resumed other jobs, issue #12 item 3)
    assert job["CheckpointConfig"]["S3Uri"] == backend.last_checkpoint_uri
    assert backend.last_checkpoint_uri.startswith(f"s3://{aws.bucket}/soundanomaly/checkpoints/")
    assert backend.last_checkpoint_uri != f"s3://{aws.bucket}/soundanomaly/checkpoints/"
    assert len(detector.history_["loss"]) == 1
    tags = boto3.client("sagemaker").list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "project", "Value": "fans"} in tags
    # the stand-in synced the job's checkpoint up, as SageMaker does
    key = backend.last_checkpoint_uri[len(f"s3://{aws.bucket}/") :] + "checkpoint.npz"
    assert s3.head_object(Bucket=aws.bucket, Key=key)["ContentLength"] > 0
    # a second job, same data and hyperparameters: its own folder, so it trains instead of resuming the first
    # (with one shared folder it resumed after the last epoch and failed with KeyError: 'loss')
    first = backend.last_checkpoint_uri
    again = AutoencoderDetector(threshold=1.0, backend=backend, epochs=1, batch_size=64).fit(features["train"])
    assert backend.last_checkpoint_uri != first
    assert len(again.history_["loss"]) == 1
    np.testing.assert_allclose(again.history_["loss"], detector.history_["loss"], rtol=1e-4)


def test_saved_model_keeps_the_artifact(trained: AutoencoderDetector, tmp_path: Any) -> None:
    loaded = load_model(trained.save(tmp_path / "model"))
    assert loaded.model_data_ == trained.model_data_  # type: ignore[attr-defined]
    assert loaded.get_params()["backend"] == "sagemaker"


def test_errors_are_mapped() -> None:
    from botocore.exceptions import ClientError

    def throttled() -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "CreateModel")

    def missing() -> None:
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": "Could not find model"}}, "DescribeModel"
        )

    with pytest.raises(ThrottlingError, match="throttled by AWS after retries") as info:
        _call("creating the model", throttled)
    assert isinstance(info.value.__cause__, ClientError)
    with pytest.raises(BackendError, match="ValidationException: Could not find model"):
        _call("describing", missing)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "my-role"}, "IAM role ARN"),
        ({"bucket": "a/b"}, "bucket"),
        ({"max_wait_seconds": 10}, "use_spot"),
        ({"train_data": "/local/dir"}, "s3://"),
    ],
)
def test_parameter_validation(aws: SimpleNamespace, kwargs: dict[str, Any], message: str) -> None:
    params = {"role": aws.role, "bucket": aws.bucket, **kwargs}
    with pytest.raises(ParameterError, match=message):
        SageMakerBackend(**params)


def test_pack_requests_respects_the_limit() -> None:
    windows = np.random.default_rng(0).normal(size=(500, 320)).astype(np.float32)
    parts = pack_requests(windows, 100_000)
    assert parts[0][0] == 0 and parts[-1][1] == 500
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert all(len(body) <= 100_000 for _, _, body in parts)
    for a, b, body in parts:
        np.testing.assert_array_equal(np.asarray(json.loads(body)["instances"], dtype=np.float32), windows[a:b])
    with pytest.raises(ParameterError, match="more than max_bytes"):
        pack_requests(windows[:1], 100)


def test_long_clips_are_split_into_records_under_the_payload_limit(
    trained: AutoencoderDetector, aws: SimpleNamespace
) -> None:
    """One 8 MB clip: several records, MaxPayloadInMB from the largest; the stand-in enforces the limit."""
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(2600, 320)).astype(np.float32), rng.normal(size=(3, 320)).astype(np.float32)]
    backend = trained.backend
    backend.reconstruct = lambda windows: windows[:, ::-1]
    out = backend.batch_transform(clips, trained.model_data_)
    for clip, result in zip(clips, out, strict=True):
        np.testing.assert_allclose(result, clip[:, ::-1], rtol=1e-6)
    job = boto3.client("sagemaker").describe_transform_job(TransformJobName=backend.last_transform_job_name)
    assert job["MaxPayloadInMB"] == 5
    # the job's input and output are deleted afterwards
    assert boto3.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix="soundanomaly/transform/")["KeyCount"] == 0


def test_the_transform_stand_in_enforces_the_payload_limit(trained: AutoencoderDetector, aws: SimpleNamespace) -> None:
    """A record over MaxPayloadInMB fails, as on SageMaker (the old one-line-per-clip layout did this)."""
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    line = json.dumps({"instances": np.zeros((2000, 320)).tolist()})  # about 1.3 MB
    s3.put_object(Bucket=aws.bucket, Key="big/input/part.jsonl", Body=line.encode())
    sm.create_model(ModelName="big", ExecutionRoleArn=aws.role, PrimaryContainer={"Image": "x"})
    try:
        sm.create_transform_job(
            TransformJobName="big",
            ModelName="big",
            MaxPayloadInMB=1,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{aws.bucket}/big/input/"}}
            },
            TransformOutput={"S3OutputPath": f"s3://{aws.bucket}/big/output/"},
            TransformResources={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        )
        with pytest.raises(RuntimeError, match="exceeds MaxPayloadInMB=1"):
            play_transform_job("big", lambda windows: windows)
    finally:
        sm.delete_model(ModelName="big")


def test_windows_are_checked_before_anything_is_billed(trained: AutoencoderDetector) -> None:
    images = [np.zeros((1, 64, 69), np.float32)]  # SpectrogramImages-like blocks, not LogMelFrames windows
    with pytest.raises(ParameterError, match="must be 2-D"):
        trained.backend.batch_transform(images, trained.model_data_)
    assert boto3.client("sagemaker").list_models()["Models"] == []


def test_inference_image_follows_the_instance_type(trained: AutoencoderDetector) -> None:
    with trained.deployed(instance_type="ml.g4dn.xlarge") as endpoint:
        model = boto3.client("sagemaker").describe_model(ModelName=endpoint.endpoint.name)
        assert "tensorflow-inference:2.16-gpu" in model["PrimaryContainer"]["Image"]
    with trained.deployed() as endpoint:
        model = boto3.client("sagemaker").describe_model(ModelName=endpoint.endpoint.name)
        assert "tensorflow-inference:2.16-cpu" in model["PrimaryContainer"]["Image"]


def test_batch_score_reads_s3_with_the_backend_session(
    trained: AutoencoderDetector, tiny: MIMII, aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clips are read with the backend's boto3 session, not s3fs's default credentials."""
    s3 = boto3.client("s3")
    clips = tiny.filter(ids=2)[:3]
    for i, record in enumerate(clips):
        s3.upload_file(record.path, aws.bucket, f"session/fan/{i:03d}.wav")
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    backend = _backend(aws, boto_session=session)
    backend.reconstruct = trained.reconstruct
    trained.backend, original = backend, trained.backend
    try:
        with monkeypatch.context() as env:
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                env.delenv(key)
            for key in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
                env.setenv(key, "/nonexistent")
            env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # default credentials (s3fs's) now do not exist
            scores = trained.batch_score(f"s3://{aws.bucket}/session/")
    finally:
        trained.backend = original
    np.testing.assert_allclose(scores, trained.score(clips), rtol=1e-6)


def test_no_region_is_a_clear_error(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as env:
        env.delenv("AWS_DEFAULT_REGION")
        env.setenv("AWS_CONFIG_FILE", "/nonexistent")
        backend = SageMakerBackend(role=aws.role, bucket=aws.bucket, progress=False)
        with pytest.raises(ParameterError, match="no AWS region"):
            backend.upload_features(np.zeros((2, 4), np.float32))


def test_role_refused_by_the_sdk_is_mapped() -> None:
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError

    def refuse(**_: Any) -> None:
        raise RoleValidationError("role lacks ecr:GetAuthorizationToken")

    with pytest.raises(BackendError, match="ecr:GetAuthorizationToken") as info:
        _model_trainer(refuse)
    assert info.value.code == "RoleValidationError"
    assert isinstance(info.value.__cause__, RoleValidationError)


def test_one_training_instance_only(aws: SimpleNamespace) -> None:
    with pytest.raises(ParameterError, match="instance_count must be 1"):
        SageMakerBackend(role=aws.role, bucket=aws.bucket, instance_count=2)
