"""Shared AWS plumbing: one place that maps botocore errors to soundanomaly's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from soundanomaly.exceptions import BackendError, ThrottlingError

__all__ = ["THROTTLING_CODES", "aws_call"]

#: Error codes AWS services use when they throttle a caller.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)
T = TypeVar("T")


def aws_call(what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run one AWS call, mapping botocore errors to soundanomaly's own."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in THROTTLING_CODES:
            raise ThrottlingError(f"{what}: throttled by AWS after retries ({code}: {message})", code=code) from exc
        raise BackendError(f"{what}: {code}: {message}", code=code) from exc
    except BotoCoreError as exc:
        raise BackendError(f"{what}: {exc}") from exc
