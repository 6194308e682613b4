"""Test doubles for code that uses soundanomaly's cloud backends.

Everything here runs against real HTTP on 127.0.0.1: moto's server for S3,
IAM and SageMaker, and :mod:`soundanomaly.testing.rekognition` (where
present) for what moto lacks. Nothing here talks to AWS.

* :func:`aws_environment`: start moto's server and point boto3 at it.
* :func:`play_training_job`: do a SageMaker training container's work for a
  job that moto marked Completed without running it (spot checkpoints synced).
* :func:`run_training_script`: run the staged training code as the container
  does, under any interpreter (:func:`container_python`: the image's Python,
  TensorFlow and Keras, prepared by ``nox -s container``).
* :func:`play_transform_job`: the same for a batch transform job (enforces
  ``MaxPayloadInMB``).
* :func:`queue_endpoint_results`: what moto's endpoints answer next.
* :class:`FakeRekognition`: Rekognition Custom Labels' lifecycle and
  ``DetectCustomLabels`` with a real model, on 127.0.0.1, as strict as AWS.
* :mod:`soundanomaly.testing.smoke`: the opt-in smoke test on a real AWS
  account (``python -m soundanomaly.testing.smoke --help``); never run by CI.

Needs ``pip install 'soundanomaly[aws,test]'`` (moto's server).
"""

from soundanomaly.testing.aws import (
    aws_environment,
    container_python,
    play_training_job,
    play_transform_job,
    queue_endpoint_results,
    run_training_script,
)
from soundanomaly.testing.rekognition import FakeRekognition

__all__ = [
    "FakeRekognition",
    "aws_environment",
    "container_python",
    "play_training_job",
    "play_transform_job",
    "queue_endpoint_results",
    "run_training_script",
]
