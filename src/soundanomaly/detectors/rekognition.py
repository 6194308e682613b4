"""The reference recipe's image route on Amazon Rekognition Custom Labels."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Instance, Interval
from soundanomaly.audio import Channel
from soundanomaly.backends.rekognition import INFERENCE_UNIT_HOUR_USD, CustomLabels, check_image_size
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.options import RunOptions
from soundanomaly.exceptions import BackendError, ModelFormatError, ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.images import SpectrogramImages, encode_png
from soundanomaly.manifest import ManifestEntry, manifest_lines
from soundanomaly.typing import ClipData, FloatArray

__all__ = ["RekognitionDetector"]

_VERSION_ARN = re.compile(
    r"^arn:aws[a-z-]*:rekognition:[a-z0-9-]+:\d{12}:project/[\w.-]{1,255}/version/[\w.-]{1,255}/\d+$"
)


class RekognitionDetector(BaseDetector):
    """Spectrogram images classified by an Amazon Rekognition Custom Labels model.

    ``fit`` checks every image against Custom Labels' limits (64 to 4096
    pixels a side, aspect ratio at most 20:1: with the default features,
    clips of about 2.05 s to 41 s) and the bucket's region, then uploads one
    spectrogram PNG per clip and a Ground Truth manifest to S3, creates (or
    reuses) the project and trains a model version (about $1 per training
    hour).
    Scoring needs the model running, which is billed per inference-unit hour:
    use ``with detector.running(): ...``, which always stops it. A clip's
    **score** is the confidence of the ``abnormal`` label in [0, 1]; a clip is
    predicted anomalous at confidence ≥ 50 %, the reference's rule.

    Parameters
    ----------
    project_name : str
        Custom Labels project (created if missing, reused if present).
    bucket : str
        S3 bucket for images, manifests and training output. Rekognition
        needs read/write access to it (see the AWS set-up docs page).
    prefix : str, default "soundanomaly/rekognition"
    version_name : str, optional
        Model version name (default: ``v<timestamp>``).
    test_data : ClipSet, optional
        Explicit test clips for the service's evaluation; default: the service
        splits off 20% of the training images (``AutoCreate``).
    features : SpectrogramImages, default SpectrogramImages()
    max_concurrency : int, optional
        Parallel ``DetectCustomLabels`` calls while scoring (default: 5 per
        inference unit the model runs with, at most 32).
    max_retries : int, default 6
        Retries with backoff for throttled calls, after botocore's own.
    training_timeout_seconds : float, default 6 h
    boto_session, region, endpoint_url, s3_endpoint_url, rekognition_client, s3_client
        Client injection, see :class:`~soundanomaly.backends.rekognition.CustomLabels`.
        A saved model folder is data: loading never takes ``endpoint_url``,
        ``s3_endpoint_url`` or ``region`` from it (pass them to ``load``, or
        ``trust_endpoints=True`` for a folder you wrote yourself).
    poll_seconds : float, default 30
    progress : bool, default True

    Attributes
    ----------
    project_arn_, version_arn_ : str
    evaluation_f1_ : float or None
        The service's F1 on its test images after training.

    Examples
    --------
    >>> detector = RekognitionDetector(project_name="fans", bucket="my-bucket")  # doctest: +SKIP
    >>> detector.fit(split.train)                   # uploads images + manifest, trains  # doctest: +SKIP
    >>> with detector.running():                    # billed while inside  # doctest: +SKIP
    ...     scores = detector.score(split.test)
    >>> detector.cleanup()                          # delete model versions and project  # doctest: +SKIP

    """

    supervised = True

    _parameter_constraints: ClassVar[Constraints] = {
        "features": [Instance(SpectrogramImages, text="SpectrogramImages"), None],
        "max_concurrency": [Interval(int, 1, None), None],
        "max_retries": [Interval(int, 0, None)],
        "training_timeout_seconds": [Interval(float, 0, None, closed="neither")],
        "poll_seconds": [Interval(float, 0, None)],
    }

    @classmethod
    def _default_features(cls) -> Any:
        return SpectrogramImages()

    def __init__(
        self,
        *,
        project_name: str,
        bucket: str,
        prefix: str = "soundanomaly/rekognition",
        version_name: str | None = None,
        test_data: ClipSet | None = None,
        features: BaseFeatureExtractor | None = None,
        max_concurrency: int | None = None,
        max_retries: int = 6,
        training_timeout_seconds: float = 6 * 3600.0,
        boto_session: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        s3_endpoint_url: str | None = None,
        rekognition_client: Any = None,
        s3_client: Any = None,
        poll_seconds: float = 30.0,
        channel: Channel = 0,
        **run_options: Any,
    ) -> None:
        self.__dict__["_run"] = RunOptions(progress=True)  # a long cloud run: a progress bar by default
        # score > this  <=>  confidence >= 50 %
        super().__init__(features=features, channel=channel, threshold=float(np.nextafter(0.5, 0.0)), **run_options)
        self.project_name = project_name
        self.bucket = bucket
        self.prefix = prefix
        self.version_name = version_name
        self.test_data = test_data
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.training_timeout_seconds = training_timeout_seconds
        self.boto_session = boto_session
        self.region = region
        self.endpoint_url = endpoint_url
        self.s3_endpoint_url = s3_endpoint_url
        self.rekognition_client = rekognition_client
        self.s3_client = s3_client
        self.poll_seconds = poll_seconds
        self._client: CustomLabels | None = None
        self._client_key: tuple[Any, ...] = ()
        self._started_at: float | None = None
        self._units = 0

    @property
    def client(self) -> CustomLabels:
        """The Custom Labels wrapper, built from the current connection attributes."""
        key = (
            self.project_name,
            id(self.boto_session),
            self.region,
            self.endpoint_url,
            self.s3_endpoint_url,
            id(self.rekognition_client),
            id(self.s3_client),
        )
        if self._client is None or key != self._client_key:
            project_arn = self._client.project_arn if self._client is not None else getattr(self, "project_arn_", None)
            self._client = CustomLabels(
                self.project_name,
                boto_session=self.boto_session,
                region=self.region,
                endpoint_url=self.endpoint_url,
                s3_endpoint_url=self.s3_endpoint_url,
                rekognition_client=self.rekognition_client,
                s3_client=self.s3_client,
                poll_seconds=self.poll_seconds,
                progress=self.progress,
                max_retries=self.max_retries,
            )
            self._client.project_arn = project_arn
            self._client_key = key
        self._client.poll_seconds, self._client.max_retries = self.poll_seconds, self.max_retries
        return self._client

    @property
    def _prefix(self) -> str:
        return self.prefix.strip("/")

    # -- training ------------------------------------------------------------------------------------
    def _pixels(self, window: FloatArray, what: str = "image") -> npt.NDArray[np.uint8]:
        assert isinstance(self.features, SpectrogramImages)
        height = self.features.size[1] if self.features.size else self.features.n_mels
        pixels = np.round(window.reshape(height, -1) * 255.0).astype(np.uint8)
        check_image_size(pixels.shape[1], pixels.shape[0], what=what)
        return pixels

    def _png(self, window: FloatArray, what: str = "image") -> bytes:
        return encode_png(self._pixels(window, what))

    def _check_images(self, features: ClipFeatures) -> None:
        """Every clip's image within Custom Labels' limits, before anything is uploaded."""
        for i in range(len(features)):
            self._pixels(features.clip(i)[0], features.paths[i] if features.paths else f"clip {i}")

    def _upload_images(self, features: ClipFeatures, labels: npt.NDArray[np.int8], folder: str) -> list[ManifestEntry]:
        entries = []
        for i in range(len(features)):
            label = "abnormal" if labels[i] else "normal"
            stem = features.paths[i].replace("\\", "/").split("/")[-3:] if features.paths else [f"clip{i:06d}"]
            key = f"{self._prefix}/images/{folder}/{label}/{i:06d}_{'_'.join(stem).replace('.wav', '')}.png"
            self.client.put_object(self.bucket, key, self._png(features.clip(i)[0]), ContentType="image/png")
            entries.append(ManifestEntry(f"s3://{self.bucket}/{key}", label))
        return entries

    def _put_manifest(self, entries: list[ManifestEntry], name: str) -> str:
        key = f"{self._prefix}/manifests/{name}.manifest"
        self.client.put_object(self.bucket, key, manifest_lines(entries).encode())
        return key

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        assert labels is not None
        if np.any(np.diff(features.offsets) != 1):
            raise ParameterError("RekognitionDetector expects one image per clip")
        self._check_images(features)
        test_features = None
        if self.test_data is not None:
            test_features = self.features.extract(self.test_data.paths, channel=self.channel, progress=self.progress)
            self._check_images(test_features)
        self.client.check_bucket_region(self.bucket)
        self.project_arn_ = self.client.ensure_project()
        self.client.check_no_datasets()  # before uploading: manifests cannot train a project with datasets
        version = self.version_name or f"v{time.strftime('%Y%m%d-%H%M%S')}"
        train_key = self._put_manifest(self._upload_images(features, labels, version), f"{version}-train")
        test_key = None
        if self.test_data is not None and test_features is not None:
            test_key = self._put_manifest(
                self._upload_images(test_features, self.test_data.labels, f"{version}-test"), f"{version}-test"
            )
        self.version_arn_ = self.client.create_version(
            version,
            bucket=self.bucket,
            train_manifest_key=train_key,
            test_manifest_key=test_key,
            output_prefix=f"{self._prefix}/output/{version}",
        )
        description = self.client.wait(
            self.version_arn_, "project_version_training_completed", timeout_seconds=self.training_timeout_seconds
        )
        f1 = description.get("EvaluationResult", {}).get("F1Score")
        self.evaluation_f1_: float | None = None if f1 is None else float(f1)
        self.client.log(f"model {version} trained; evaluation F1 {self.evaluation_f1_}")

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        return np.empty(0, dtype=np.float64)  # scoring needs a running (billed) model: not done in fit

    # -- running the model ------------------------------------------------------------------------------
    def start(self, *, min_inference_units: int = 1) -> None:
        """Start the model and wait until it is RUNNING. Prefer :meth:`running`."""
        self._check_fitted()
        self.client.start(self.version_arn_, min_inference_units=min_inference_units)
        self._started_at = time.monotonic()
        self._units = min_inference_units

    def stop(self) -> None:
        """Stop the model and wait until it is STOPPED; print the estimated cost."""
        self._check_fitted()
        self.client.stop(self.version_arn_)
        if self._started_at is not None:
            self.client.log(f"ran {self.cost_estimate()}")
        self._started_at = None

    def cost_estimate(self) -> str:
        """Estimated charge of the current run (inference-unit hours x the on-demand price)."""
        if self._started_at is None:
            return "not running"
        hours = (time.monotonic() - self._started_at) / 3600.0
        return f"{hours:.3f} h x {self._units} unit(s) ~ ${hours * self._units * INFERENCE_UNIT_HOUR_USD:.2f}"

    @contextlib.contextmanager
    def running(self, *, min_inference_units: int = 1) -> Iterator[RekognitionDetector]:
        """Keep the model running inside a ``with`` block; always stop it after (errors, Ctrl-C too)."""
        try:
            self.start(min_inference_units=min_inference_units)
            yield self
        finally:
            self.stop()

    # -- scoring -----------------------------------------------------------------------------------------
    def _check_running(self) -> None:
        self._check_fitted()
        status = self.client.describe_version(self.version_arn_).get("Status")
        if status != "RUNNING":
            raise BackendError(f"model is {status}, not RUNNING: score inside 'with detector.running():'")

    def score(
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Confidence of the ``abnormal`` label per clip, in [0, 1] (model must be running)."""
        self._check_running()
        return super().score(data, groups=groups, sessions=sessions, options=options)

    def score_images(self, images: Sequence[bytes | str]) -> npt.NDArray[np.float64]:
        """Confidence of ``abnormal`` for ready-made images: PNG/JPEG bytes or ``s3://`` URIs.

        For images already in S3 (e.g. the ones :meth:`fit` uploaded), the
        service reads them itself; nothing is downloaded.
        """
        self._check_running()
        return self._detect_many(list(images))

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        return self._detect_many([self._png(window) for window in windows])

    def concurrency(self) -> int:
        """Parallel DetectCustomLabels calls: ``max_concurrency``, or 5 per running inference unit (at most 32)."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        units = self._units or int(self.client.describe_version(self.version_arn_).get("MinInferenceUnits") or 1)
        return max(1, min(32, 5 * units))

    def _detect_many(self, images: list[bytes | str]) -> npt.NDArray[np.float64]:
        def one(image: bytes | str) -> float:
            labels = self.client.detect(self.version_arn_, image, min_confidence=0.0)
            if "abnormal" in labels:
                return labels["abnormal"] / 100.0
            return 1.0 - labels.get("normal", 100.0) / 100.0

        with ThreadPoolExecutor(max_workers=self.concurrency()) as pool:
            return np.array(list(pool.map(one, images)), dtype=np.float64)

    def cleanup(self, *, delete_project: bool = True) -> None:
        """Stop and delete the project's model versions, and the project (paid resources gone)."""
        self.client.delete(delete_project=delete_project)

    def _get_state(self) -> dict[str, FloatArray]:
        return {}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        return None

    def _manifest_extra(self) -> dict[str, Any]:
        return {
            "project_arn": self.project_arn_,
            "version_arn": self.version_arn_,
            "evaluation_f1": self.evaluation_f1_,
        }

    def _state_spec(self) -> dict[str, tuple[int | None, ...]]:
        return {}  # no arrays: the model lives in the service

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        # A model folder is data, not instructions: BaseDetector.load drops the saved endpoint_url,
        # s3_endpoint_url and region unless trust_endpoints=True; the ARNs must at least be ARNs.
        version_arn = extra.get("version_arn")
        if not isinstance(version_arn, str) or not _VERSION_ARN.match(version_arn):
            raise ModelFormatError(f"the model folder's version_arn is not a Rekognition model ARN: {version_arn!r}")
        self.project_arn_ = extra["project_arn"]
        self.version_arn_ = version_arn
        self.evaluation_f1_ = extra.get("evaluation_f1")
        self._client = None
