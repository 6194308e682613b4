"""The opt-in real-AWS smoke script: argument parsing, the cost bound printed first, the dry run.

The script itself is never run against AWS here (CI has no account); these
tests prove that a dry run contacts nothing and that nothing runs without
confirmation.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from soundanomaly.testing import smoke

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"


def _no_aws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    contacted: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        contacted.append("boto3.Session")
        raise AssertionError("the dry run must not contact AWS")

    import boto3

    monkeypatch.setattr(boto3, "Session", refuse)

    def run(args: Any, out: Any) -> int:
        contacted.append("run")
        return 0

    monkeypatch.setattr(smoke, "run", run)
    return contacted


def test_dry_run_prints_the_cost_bound_and_contacts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    contacted = _no_aws(monkeypatch)
    out = io.StringIO()
    assert smoke.main(["--bucket", "my-bucket", "--role", ROLE, "--dry-run"], out=out) == 0
    text = out.getvalue()
    assert contacted == []
    lines = text.splitlines()
    assert lines[0].startswith("soundanomaly smoke test: bucket my-bucket, prefix soundanomaly-smoke/")
    assert any("sagemaker-training" in line and "ml.m5.large" in line for line in lines)
    assert any(line.startswith("COST BOUND: at most $5.19") for line in lines)
    assert lines[-1] == "dry run: nothing created, nothing contacted"


def test_cost_bound_follows_the_options() -> None:
    args = smoke.parse_args(["--bucket", "b", "--role", ROLE, "--skip-rekognition", "--max-minutes", "60"])
    plan = smoke.build_plan(args)
    assert [s.name for s in plan] == ["sagemaker-training", "sagemaker-endpoint", "sagemaker-transform"]
    assert smoke.cost_bound(plan) == pytest.approx(0.115 + 0.119 + 0.138)
    rekognition = smoke.build_plan(smoke.parse_args(["--bucket", "b", "--role", ROLE, "--skip-sagemaker"]))
    assert smoke.cost_bound(rekognition) == pytest.approx(3 * 1.00 + 0.5 * 4.00)  # training bound 3 h, 1 unit


def test_nothing_runs_without_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    contacted = _no_aws(monkeypatch)
    out = io.StringIO()
    assert smoke.main(["--bucket", "b", "--role", ROLE], out=out, confirm=lambda prompt: "no") == 2
    assert contacted == []
    assert "COST BOUND" in out.getvalue() and out.getvalue().rstrip().endswith("aborted: nothing created")
    assert smoke.main(["--bucket", "b", "--role", ROLE], out=io.StringIO(), confirm=lambda prompt: "yes") == 0
    assert smoke.main(["--bucket", "b", "--role", ROLE, "--yes"], out=io.StringIO()) == 0
    assert contacted == ["run", "run"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", ROLE], "--bucket"),
        (["--bucket", "b", "--role", "my-role"], "IAM role ARN"),
        (["--bucket", "b", "--role", ROLE, "--max-minutes", "0"], "max-minutes"),
        (["--bucket", "b", "--role", ROLE, "--skip-sagemaker", "--skip-rekognition"], "nothing to do"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        smoke.parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
