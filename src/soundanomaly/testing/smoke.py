"""Opt-in smoke test against real AWS (never run by CI): ``python -m soundanomaly.testing.smoke``.

For users with an AWS account who want to check their set-up (IAM role,
bucket, region, quotas) end to end before paying for real work. It uses
the smallest instances, prints an upper bound of the cost **before** it
creates anything, asks for confirmation (or ``--yes``), reports each step,
and deletes everything it created: SageMaker model, endpoint config,
endpoint, the Rekognition project with its model versions and datasets,
and every S3 object under its own prefix. ``--dry-run`` prints the plan and
the bound and contacts nothing.

Examples
--------
>>> plan = build_plan(parse_args(["--bucket", "b", "--role", "arn:aws:iam::1:role/r", "--dry-run"]))
>>> [step.name for step in plan][:2]
['sagemaker-training', 'sagemaker-endpoint']
>>> f"{cost_bound(plan):.2f}"
'5.19'
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from soundanomaly.backends.rekognition import INFERENCE_UNIT_HOUR_USD, TRAINING_HOUR_USD

__all__ = ["Step", "build_plan", "cost_bound", "main", "parse_args"]

#: Smallest instances the smoke test uses, and their approximate on-demand prices (us-east-1, USD/hour).
SMOKE_INSTANCES = {"training": ("ml.m5.large", 0.115), "endpoint": ("ml.c5.large", 0.119), "transform": ("ml.m5.large", 0.138)}  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One paid step: what it runs, and its longest billed time (it is stopped or deleted by then).

    Examples
    --------
    >>> Step("endpoint", "ml.c5.large", 0.119, 0.5).bound_usd
    0.0595
    """

    name: str
    what: str
    hourly_usd: float
    max_hours: float

    @property
    def bound_usd(self) -> float:
        """Upper bound of this step's charge."""
        return self.hourly_usd * self.max_hours


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``).

    Examples
    --------
    >>> parse_args(["--bucket", "b", "--role", "arn:aws:iam::1:role/r", "--prefix", "smoke/"]).prefix
    'smoke'
    """
    parser = argparse.ArgumentParser(
        prog="python -m soundanomaly.testing.smoke",
        description="Create, use and delete the smallest soundanomaly resources on real AWS (costs money).",
    )
    parser.add_argument("--bucket", required=True, help="S3 bucket in --region (objects go under --prefix)")
    parser.add_argument("--role", required=True, help="SageMaker execution role ARN")
    parser.add_argument("--region", default=None, help="AWS region (default: your configuration's)")
    parser.add_argument("--profile", default=None, help="AWS profile (default: your configuration's)")
    parser.add_argument("--prefix", default=None, help="S3 key prefix (default: soundanomaly-smoke/<run id>)")
    parser.add_argument("--skip-sagemaker", action="store_true", help="do not run the SageMaker steps")
    parser.add_argument("--skip-rekognition", action="store_true", help="do not run the Rekognition steps")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="longest wait for each job/resource")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the cost bound; contact nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    if not args.role.startswith("arn:") or ":role/" not in args.role:
        parser.error(f"--role must be an IAM role ARN, got {args.role!r}")
    if args.max_minutes <= 0:
        parser.error("--max-minutes must be > 0")
    if args.skip_sagemaker and args.skip_rekognition:
        parser.error("nothing to do: both --skip-sagemaker and --skip-rekognition")
    args.prefix = (args.prefix or f"soundanomaly-smoke/{uuid.uuid4().hex[:8]}").strip("/")
    return args


def build_plan(args: argparse.Namespace) -> list[Step]:
    """The paid steps ``args`` asks for, each with its longest billed time.

    Examples
    --------
    >>> args = parse_args(["--bucket", "b", "--role", "arn:aws:iam::1:role/r", "--skip-sagemaker"])
    >>> [step.name for step in build_plan(args)]
    ['rekognition-training', 'rekognition-inference']
    """
    hours = args.max_minutes / 60.0
    plan = []
    if not args.skip_sagemaker:
        for name, kind in (("sagemaker-training", "training"), ("sagemaker-endpoint", "endpoint")):
            instance, price = SMOKE_INSTANCES[kind]
            plan.append(Step(name, f"{kind} on {instance}", price, hours))
        instance, price = SMOKE_INSTANCES["transform"]
        plan.append(Step("sagemaker-transform", f"batch transform on {instance}", price, hours))
    if not args.skip_rekognition:
        plan.append(Step("rekognition-training", "Custom Labels training", TRAINING_HOUR_USD, max(hours, 3.0)))
        plan.append(Step("rekognition-inference", "1 inference unit", INFERENCE_UNIT_HOUR_USD, hours))
    return plan


def cost_bound(plan: Sequence[Step]) -> float:
    """Upper bound of the whole run's charge (S3 storage of a few MB for minutes aside).

    Examples
    --------
    >>> cost_bound([Step("a", "x", 1.0, 0.5), Step("b", "y", 4.0, 0.25)])
    1.5
    """
    return sum(step.bound_usd for step in plan)


def print_plan(plan: Sequence[Step], args: argparse.Namespace, out: TextIO) -> None:
    """The plan and its cost bound, printed before anything is created."""
    print(f"soundanomaly smoke test: bucket {args.bucket}, prefix {args.prefix}/, role {args.role}", file=out)
    for step in plan:
        print(
            f"  {step.name:<24} {step.what:<32} at most {step.max_hours:.2f} h x ${step.hourly_usd:.3f}/h"
            f" = ${step.bound_usd:.2f}",
            file=out,
        )
    print(f"COST BOUND: at most ${cost_bound(plan):.2f} (approximate us-east-1 on-demand prices)", file=out)


def _report(out: TextIO) -> Callable[[str, str], None]:
    def report(step: str, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {step}: {message}", file=out, flush=True)

    return report


def run(args: argparse.Namespace, out: TextIO) -> int:  # pragma: no cover - real AWS only
    """Run the plan against AWS; every resource is deleted in ``finally`` blocks."""
    import boto3

    from soundanomaly.backends.sagemaker import SageMakerBackend
    from soundanomaly.datasets import MIMII, synthetic
    from soundanomaly.detectors import AutoencoderDetector, RekognitionDetector

    report = _report(out)
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    timeout = args.max_minutes * 60.0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="soundanomaly-smoke-") as folder:
        clips = MIMII(synthetic.write_dataset(Path(folder), ids=[0], n_normal=12, n_abnormal=6, duration=3.0))
        try:
            if not args.skip_sagemaker:
                backend = SageMakerBackend(
                    role=args.role,
                    bucket=args.bucket,
                    prefix=f"{args.prefix}/sagemaker",
                    boto_session=session,
                    instance_type=SMOKE_INSTANCES["training"][0],
                    max_runtime_seconds=int(timeout),
                    timeout_seconds=timeout,
                )
                try:
                    report("sagemaker-training", f"training on {backend.instance_type}")
                    detector = AutoencoderDetector(backend=backend, epochs=2, threshold=1.0)
                    detector.fit(clips.filter(label="normal"))
                    report("sagemaker-training", f"done: {backend.last_job_name}, {detector.model_data_}")
                    with detector.deployed(instance_type=SMOKE_INSTANCES["endpoint"][0]) as endpoint:
                        report("sagemaker-endpoint", f"scores {endpoint.score(clips[:3]).round(4).tolist()}")
                    report("sagemaker-endpoint", "endpoint, endpoint config and model deleted")
                    scores = detector.batch_score(clips[:3], instance_type=SMOKE_INSTANCES["transform"][0])
                    report("sagemaker-transform", f"scores {scores.round(4).tolist()}; model and S3 data deleted")
                except Exception as exc:
                    failures += 1
                    report("sagemaker", f"FAILED: {type(exc).__name__}: {exc}")
            if not args.skip_rekognition:
                rekognition = RekognitionDetector(
                    project_name=f"soundanomaly-smoke-{args.prefix.rsplit('/', 1)[-1]}",
                    bucket=args.bucket,
                    prefix=f"{args.prefix}/rekognition",
                    boto_session=session,
                    training_timeout_seconds=3 * 3600.0,
                )
                try:
                    report("rekognition-training", f"project {rekognition.project_name}")
                    rekognition.fit(clips)
                    report("rekognition-training", f"done: F1 {rekognition.evaluation_f1_}")
                    with rekognition.running(min_inference_units=1):
                        report("rekognition-inference", f"scores {rekognition.score(clips[:3]).round(4).tolist()}")
                    report("rekognition-inference", "model stopped")
                except Exception as exc:
                    failures += 1
                    report("rekognition", f"FAILED: {type(exc).__name__}: {exc}")
                finally:
                    rekognition.cleanup()
                    report("rekognition-cleanup", "model versions, datasets and project deleted")
        finally:
            _delete_prefix(session, args.bucket, f"{args.prefix}/", report)
    report("done", "all steps passed" if not failures else f"{failures} step(s) failed")
    return 0 if not failures else 1


def _delete_prefix(
    session: Any, bucket: str, prefix: str, report: Callable[[str, str], None]
) -> None:  # pragma: no cover - real AWS only
    s3 = session.client("s3")
    keys = [
        {"Key": item["Key"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    for first in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[first : first + 1000], "Quiet": True})
    report("s3-cleanup", f"deleted {len(keys)} object(s) under s3://{bucket}/{prefix}")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, confirm: Callable[[str], str] = input) -> int:
    """Entry point: print the plan and the cost bound first, then (after confirmation) run it.

    Examples
    --------
    >>> main(["--bucket", "b", "--role", "arn:aws:iam::1:role/r", "--prefix", "p", "--dry-run"])  # doctest: +ELLIPSIS
    soundanomaly smoke test: bucket b, prefix p/, role arn:aws:iam::1:role/r
    ...
    COST BOUND: at most $5.19 (approximate us-east-1 on-demand prices)
    dry run: nothing created, nothing contacted
    0
    """
    stream = out or sys.stdout
    args = parse_args(argv)
    plan = build_plan(args)
    print_plan(plan, args, stream)
    if args.dry_run:
        print("dry run: nothing created, nothing contacted", file=stream)
        return 0
    if not args.yes and confirm("Create these resources? Type 'yes' to continue: ").strip().lower() != "yes":
        print("aborted: nothing created", file=stream)
        return 2
    return run(args, stream)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
