"""
The image route: spectrograms, a CNN, and Rekognition Custom Labels
===================================================================

The third reference notebook turns each clip into a spectrogram image and
trains an image classifier on normal *and* abnormal examples. soundanomaly
does this offline with a small CNN, and through Amazon Rekognition Custom
Labels with the full lifecycle: project, Ground Truth manifest, model
version, start, detect, stop, cleanup.
"""

# %%
# Spectrogram images
# ------------------
# 64 mel bands x 313 frames for a 10 s clip, min-max scaled per image, low
# frequencies at the bottom, loud = dark: what the reference sent to Rekognition.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from soundanomaly.audio import load
from soundanomaly.datasets import MIMII, classifier_split, synthetic
from soundanomaly.detectors import SpectrogramCNNDetector
from soundanomaly.evaluation import Evaluator
from soundanomaly.features import SpectrogramImages

workdir = Path(tempfile.mkdtemp())
clips = MIMII(synthetic.write_dataset(workdir / "fans", ids=[0, 2], n_normal=40, n_abnormal=20))
images = SpectrogramImages()
fig, axes = plt.subplots(1, 2, figsize=(12, 3), layout="constrained")
for ax, label in zip(axes, ["normal", "abnormal"], strict=True):
    signal, sr = load(clips.filter(label=label, ids=2)[0].path)
    ax.imshow(images.image(signal, sr), cmap="gray", aspect="auto")
    ax.set(
        title=f"{label}: {images.image(signal, sr).shape[1]} x {images.image(signal, sr).shape[0]} px",
        xticks=[],
        yticks=[],
    )
plt.show()

# %%
# The reference's stratified 80/20 split and a local CNN
# ------------------------------------------------------
# ``fit`` holds out a stratified 20 % of the training clips, trains on the
# rest with class weights (anomalies are the rarer class), and sets the
# default threshold where the held-out clips are told apart best: no
# threshold is tuned on the test set.
split = classifier_split(clips, train_size=0.8, seed=42)
cnn = SpectrogramCNNDetector(seed=0).fit(split.train)
calibration = cnn.calibration_
print(
    f"default threshold {cnn.threshold_:.3f} ({calibration.strategy}, from {calibration.n_normal} normal and "
    f"{calibration.n_abnormal} anomalous held-out clips)"
)
cnn_scores = cnn.score(split.test)
report = Evaluator().evaluate(split.test.labels, cnn_scores, threshold=cnn.threshold_)
print(f"train {len(split.train)}, test {len(split.test)} clips")
print(report.to_markdown())

# %%
# Rekognition Custom Labels
# -------------------------
# **Executed here against soundanomaly's local stand-in**
# (:class:`soundanomaly.testing.FakeRekognition`: the Custom Labels wire
# protocol and state machine on 127.0.0.1, which trains a real CNN on the
# manifest's images) with S3 on moto's server. Against AWS, drop the
# ``aws_environment`` and ``FakeRekognition`` blocks and the ``endpoint_url``.
import boto3

from soundanomaly.detectors import RekognitionDetector
from soundanomaly.testing import FakeRekognition, aws_environment

with aws_environment(), FakeRekognition(epochs=20) as fake:
    boto3.client("s3").create_bucket(Bucket="sound-bucket")
    detector = RekognitionDetector(
        project_name="fans", bucket="sound-bucket", endpoint_url=fake.url, poll_seconds=0.1, progress=False
    )
    detector.fit(split.train)  # images + Ground Truth manifest to S3, project, model version, training
    version = detector.version_arn_.split("/version/")[1].split("/")[0]
    print("model version:", version)
    print("the service's evaluation F1:", detector.evaluation_f1_)
    key = f"soundanomaly/rekognition/manifests/{version}-train.manifest"
    manifest = boto3.client("s3").get_object(Bucket="sound-bucket", Key=key)
    print("first manifest line:", manifest["Body"].read().decode().splitlines()[0][:160], "...")

    with detector.running(min_inference_units=1):  # billed per inference-unit hour on AWS; always stopped
        scores = detector.score(split.test)  # DetectCustomLabels, in parallel
        print("while running:", detector.cost_estimate())
    print("after the block:", fake.version_statuses())

    detector.cleanup()  # delete the model versions and the project
    print("projects left:", list(fake.projects))

report = Evaluator().evaluate(split.test.labels, scores, threshold=detector.threshold_)
print(report.to_markdown())
