"""Exception hierarchy: one root, precise subclasses.

Every error raised on purpose by soundanomaly derives from
:class:`SoundAnomalyError`, so ``except SoundAnomalyError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BackendError",
    "BackendTimeoutError",
    "CalibrationWarning",
    "InvalidScoreError",
    "InvalidScoreWarning",
    "JobFailedError",
    "MissingDependencyError",
    "ModelFormatError",
    "NotFittedError",
    "OutputExistsError",
    "OutputWriteError",
    "ParameterError",
    "SoundAnomalyError",
    "SoundAnomalyWarning",
    "ThrottlingError",
]


class SoundAnomalyError(Exception):
    """Root of every error soundanomaly raises on purpose.

    Examples
    --------
    >>> from soundanomaly.audio import load
    >>> try:
    ...     load("missing.wav")
    ... except SoundAnomalyError as error:
    ...     print(type(error).__name__, error)
    AudioError missing.wav: file not found

    """


class ParameterError(SoundAnomalyError, ValueError):
    """A parameter has an invalid value; the message names the parameter.

    Examples
    --------
    >>> from soundanomaly.features import LogMelFrames
    >>> LogMelFrames(n_mels=0)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: n_mels must be an int in [1, 1024], got 0

    """


class AudioError(SoundAnomalyError, ValueError):
    """A clip cannot be used: missing, not audio, truncated, empty, NaN/inf, too short.

    Attributes
    ----------
    path : str
        The file (or URL) at fault.

    Examples
    --------
    >>> error = AudioError("fan.wav", "truncated WAV file")
    >>> error.path, error.problem, str(error)
    ('fan.wav', 'truncated WAV file', 'fan.wav: truncated WAV file')

    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NotFittedError(SoundAnomalyError, ValueError, AttributeError):
    """A detector was used before :meth:`fit` (or :meth:`load`).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> GaussianDetector().predict(["a.wav"])
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.NotFittedError: this GaussianDetector is not fitted yet; call fit() or load() first

    """


class MissingDependencyError(SoundAnomalyError, ImportError):
    """An optional dependency is missing; the message names the extra to install.

    Examples
    --------
    >>> str(MissingDependencyError("tensorflow", "tf", "training the autoencoder"))
    "training the autoencoder needs the optional package 'tensorflow'; install it with: pip install 'soundanomaly[tf]'"

    """

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the optional package {package!r}; install it with: pip install 'soundanomaly[{extra}]'"
        )


class ModelFormatError(SoundAnomalyError, ValueError):
    """A saved model cannot be loaded: bad manifest, newer format, mismatched features.

    Examples
    --------
    >>> from soundanomaly.detectors import load_model
    >>> load_model(".")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ModelFormatError: .: not a saved model (no manifest.json)

    """


class InvalidScoreError(SoundAnomalyError, ValueError):
    """Some clips got a NaN or infinite score; such a clip is never counted as normal.

    Raised by ``score``/``predict`` when the detector's ``on_error`` is
    ``"raise"`` (the default); with ``on_error="skip"`` those clips get a NaN
    score, the status ``"invalid: non-finite score"`` and the label 1.

    Attributes
    ----------
    paths : tuple of str
        The clips at fault (``"#<index>"`` for clips given as arrays).

    Examples
    --------
    >>> error = InvalidScoreError(["a.wav", "b.wav"])
    >>> error.paths, str(error)
    (('a.wav', 'b.wav'), '2 clip(s) got a NaN or infinite score: a.wav, b.wav')

    """

    def __init__(self, paths: object) -> None:
        self.paths = tuple(str(p) for p in paths)  # type: ignore[attr-defined]
        shown = ", ".join(self.paths[:5]) + (", ..." if len(self.paths) > 5 else "")
        super().__init__(f"{len(self.paths)} clip(s) got a NaN or infinite score: {shown}")


class SoundAnomalyWarning(UserWarning):
    """Root of the warnings soundanomaly issues (results that may not mean what they seem).

    Examples
    --------
    >>> issubclass(CalibrationWarning, SoundAnomalyWarning)
    True

    """


class CalibrationWarning(SoundAnomalyWarning):
    """A threshold was calibrated on too few clips to resolve the asked false-alarm rate.

    With ``n`` normal calibration clips the smallest false-alarm rate that can
    be told apart is about ``1 / (n + 1)``: a target of 1 % needs about 99.

    Examples
    --------
    >>> issubclass(CalibrationWarning, UserWarning)
    True

    """


class InvalidScoreWarning(SoundAnomalyWarning):
    """Some clips were skipped or got a non-finite score (``on_error="skip"``); they are labelled anomalous.

    Examples
    --------
    >>> issubclass(InvalidScoreWarning, SoundAnomalyWarning)
    True

    """


class BackendError(SoundAnomalyError, RuntimeError):
    """A runtime backend (local or cloud) failed; chained ``from`` the original error.

    Attributes
    ----------
    code : str or None
        The service's error code (e.g. ``"ResourceInUseException"``), when there is one.

    Examples
    --------
    >>> BackendError("creating the model: ValidationException: bad", code="ValidationException").code
    'ValidationException'

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

    Examples
    --------
    >>> error = JobFailedError("train-1", "AlgorithmError: out of memory")
    >>> str(error), error.failure_reason
    ('train-1 failed: AlgorithmError: out of memory', 'AlgorithmError: out of memory')

    """

    def __init__(self, job: str, failure_reason: str) -> None:
        self.job = job
        self.failure_reason = failure_reason
        super().__init__(f"{job} failed: {failure_reason}")


class BackendTimeoutError(BackendError, TimeoutError):
    """Waiting for a cloud resource took longer than the configured timeout.

    Examples
    --------
    >>> isinstance(BackendTimeoutError("job still InProgress after 60 s"), TimeoutError)
    True

    """


class ThrottlingError(BackendError):
    """The service kept throttling requests after every retry.

    Examples
    --------
    >>> isinstance(ThrottlingError("throttled"), BackendError)
    True

    """


class OutputExistsError(SoundAnomalyError, FileExistsError):
    """An output path holds something the library did not write (or is an input); nothing was changed.

    Examples
    --------
    >>> isinstance(OutputExistsError("notes: exists"), FileExistsError)
    True

    """


class OutputWriteError(SoundAnomalyError, OSError):
    """An output could not be written (a full disk, permissions); the message names it and nothing was changed.

    Examples
    --------
    >>> isinstance(OutputWriteError("model: cannot write (No space left on device)"), OSError)
    True

    """
