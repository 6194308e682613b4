"""Exception hierarchy: one root, precise subclasses.

Every error raised on purpose by soundanomaly derives from
:class:`SoundAnomalyError`, so ``except SoundAnomalyError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BackendError",
    "BackendTimeoutError",
    "JobFailedError",
    "MissingDependencyError",
    "ModelFormatError",
    "NotFittedError",
    "ParameterError",
    "SoundAnomalyError",
    "ThrottlingError",
]


class SoundAnomalyError(Exception):
    """Root of every error soundanomaly raises on purpose."""


class ParameterError(SoundAnomalyError, ValueError):
    """A parameter has an invalid value; the message names the parameter."""


class AudioError(SoundAnomalyError, ValueError):
    """A clip cannot be used: missing, not audio, truncated, empty, NaN/inf, too short.

    Attributes
    ----------
    path : str
        The file (or URL) at fault.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NotFittedError(SoundAnomalyError, ValueError, AttributeError):
    """A detector was used before :meth:`fit` (or :meth:`load`)."""


class MissingDependencyError(SoundAnomalyError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the optional package {package!r}; install it with: pip install 'soundanomaly[{extra}]'"
        )


class ModelFormatError(SoundAnomalyError, ValueError):
    """A saved model cannot be loaded: bad manifest, newer format, mismatched features."""


class BackendError(SoundAnomalyError, RuntimeError):
    """A runtime backend (local or cloud) failed; chained ``from`` the original error.

    Attributes
    ----------
    code : str or None
        The service's error code (e.g. ``"ResourceInUseException"``), when there is one.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class JobFailedError(BackendError):
    """A cloud job (training, transform, model training) ended in failure.

    Attributes
    ----------
    job : str
        Name or ARN of the job.
    failure_reason : str
        The service's own explanation (SageMaker ``FailureReason``,
        Rekognition ``StatusMessage``).
    """

    def __init__(self, job: str, failure_reason: str) -> None:
        self.job = job
        self.failure_reason = failure_reason
        super().__init__(f"{job} failed: {failure_reason}")


class BackendTimeoutError(BackendError, TimeoutError):
    """Waiting for a cloud resource took longer than the configured timeout."""


class ThrottlingError(BackendError):
    """The service kept throttling requests after every retry."""
