"""
The autoencoder route
=====================

The second reference notebook: log-mel frame features, a dense autoencoder
trained on normal sound only, reconstruction-error scores, a threshold, and
metrics with **anomaly as the positive class**. We compare the honest default
threshold (``fit`` calibrates it on normal clips it held out of training) with
the reference's threshold tuned on the test set itself, then train the same model as an Amazon SageMaker
training job.
"""

# %%
# Data and split
# --------------
# Training uses normal clips only; the test set holds as many normal as
# abnormal clips. ``fit`` itself holds 20 % of the training clips out to
# calibrate the threshold, so no separate validation part is needed here.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from soundanomaly import plots
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import MIMII, autoencoder_split, synthetic
from soundanomaly.detectors import AutoencoderDetector
from soundanomaly.evaluation import Evaluator
from soundanomaly.features import LogMelFrames

workdir = Path(tempfile.mkdtemp())
clips = MIMII(synthetic.write_dataset(workdir / "fans", ids=[0, 2], n_normal=40, n_abnormal=12))
split = autoencoder_split(clips, validation_fraction=0.0, seed=0)
print(f"train {len(split.train)} normal, test {split.test!r}")

# %%
# Features: 5 log-mel frames of 64 bands per vector
# -------------------------------------------------
extractor = LogMelFrames(n_mels=64, frames=5, n_fft=1024, hop_length=512)
train = extractor.extract(split.train.paths, progress=False)
test = extractor.extract(split.test.paths, progress=False)
print(f"{len(train.windows)} training vectors of {train.n_features} values; one 10 s clip -> {len(test.clip(0))}")

# %%
# Train the autoencoder (64-64-8-64-64, ReLU) on normal sound
# -----------------------------------------------------------
# With 11 held-out clips, a false-alarm rate of 10 % is the finest target
# they can resolve (1 % would need about 100; ``fit`` would warn).
calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.1)
detector = AutoencoderDetector(features=extractor, epochs=20, seed=0, threshold=calibrator).fit(train)
print(f"threshold {detector.threshold_:.4g} from {detector.calibration_.n_normal} held-out normal clips")
plt.figure(figsize=(6, 3.5))
plt.plot(detector.history_["loss"], label="training loss")
plt.plot(detector.history_["val_loss"], label="validation loss")
plt.xlabel("epoch")
plt.ylabel("MSE")
plt.legend()
plt.show()

# %%
# Scores: mean reconstruction error per clip
# ------------------------------------------
honest = detector.calibration_  # set by fit on the held-out normal clips
scores = detector.score(test)
plots.plot_score_histogram(scores, split.test.labels, threshold=honest.threshold)
plt.show()

# %%
# Two thresholds
# --------------
# The reference swept thresholds on the *test* scores and kept the one with the
# fewest errors. That threshold has seen the answers, so its metrics are an
# upper bound. The honest one comes from held-out normal clips only.
test_tuned = ThresholdCalibrator("min_errors").fit(scores, split.test.labels)
plots.plot_errors_vs_threshold(test_tuned)
plt.show()

evaluator = Evaluator(normal_as_positive=True)
for name, threshold in [("honest (held-out normal clips)", honest.threshold), ("test-set tuned", test_tuned.threshold)]:
    report = evaluator.evaluate(split.test.labels, scores, threshold=threshold, groups=split.test.eval_groups)
    print(f"\n### {name}\n")
    print(report.to_markdown())

# %%
# Confusion matrix and ROC, anomaly = positive
# --------------------------------------------
report = evaluator.evaluate(split.test.labels, scores, threshold=honest.threshold)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
plots.plot_confusion_matrix(report.overall, ax=axes[0])
plots.plot_roc(split.test.labels, scores, ax=axes[1])
plt.show()

# %%
# The same model as an Amazon SageMaker training job
# --------------------------------------------------
# ``AutoencoderDetector(backend=SageMakerBackend(...))`` uploads the features,
# submits a training job (SageMaker SDK v3 ``ModelTrainer``, TensorFlow
# container, ``ml.p3.2xlarge``) running the entry script shipped in the package,
# and loads the trained weights back. **Executed here against moto's server on
# 127.0.0.1, not AWS**: moto marks the job Completed without running it, so
# ``play_training_job`` does the container's work locally (it runs the staged
# entry script on the downloaded channels) before the library continues on its
# normal path. Against AWS, drop the subclass and the ``aws_environment``.
import json

import boto3

from soundanomaly.backends.sagemaker import SageMakerBackend, pack_requests
from soundanomaly.testing import aws_environment, play_training_job, queue_endpoint_results


class LocallyPlayedBackend(SageMakerBackend):
    def wait_for_training(self, job_name):
        play_training_job(job_name)  # what the training container would do
        return super().wait_for_training(job_name)


with aws_environment() as moto_url:
    role = boto3.client("iam").create_role(RoleName="sagemaker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("s3").create_bucket(Bucket="sound-bucket")
    backend = LocallyPlayedBackend(role=role, bucket="sound-bucket", poll_seconds=0.1, progress=False)
    cloud = AutoencoderDetector(features=extractor, epochs=20, seed=0, threshold=calibrator, backend=backend).fit(train)
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=backend.last_job_name)
    print(job["TrainingJobName"], job["TrainingJobStatus"], job["ResourceConfig"]["InstanceType"])
    print("model artifact:", cloud.model_data_)

    # An endpoint (ml.c5.large) that is always deleted on exit; moto's endpoint
    # answers with canned bodies, which we fill with the real model's output.
    queue_endpoint_results(
        moto_url,
        [
            json.dumps({"predictions": cloud.reconstruct(test.windows[a:b]).tolist()})
            for a, b, _ in pack_requests(test.windows)
        ],
    )
    with cloud.deployed() as endpoint:
        endpoint_scores = endpoint.score(test)
    print("endpoints left:", boto3.client("sagemaker").list_endpoints()["Endpoints"])

print("largest difference, endpoint vs local scores:", float(abs(endpoint_scores - cloud.score(test)).max()))
print(
    "AUC, cloud-trained model:",
    round(Evaluator().evaluate(split.test.labels, cloud.score(test), threshold=0.0).overall.roc_auc, 3),
)
