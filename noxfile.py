"""Developer tasks. Run ``nox -l`` to list them; each session builds its own virtualenv.

The README's two commands are ``nox -s demo`` (the main job) and ``nox -s tests``.
"""

from __future__ import annotations

import os

import nox

#: Known-good pins: a fresh machine resolves in seconds instead of backtracking.
CONSTRAINTS = ("-c", "constraints.txt")

nox.options.sessions = ["tests", "typing", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration and doctests (TensorFlow included, AWS only via local servers)."""
    session.install(*CONSTRAINTS, "-e", ".[tf,aws,test,dask,export]")
    session.run("pytest", *(session.posargs or ["-q"]), env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install(*CONSTRAINTS, "-e", ".[aws,test,dask,export]", "mypy>=1.10")
    session.run("mypy")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install(*CONSTRAINTS, "ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the Sphinx site with warnings as errors."""
    session.install(*CONSTRAINTS, "-e", ".[tf,aws,test,docs,export]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: synthetic fans → autoencoder → calibrated threshold → report/."""
    session.install(*CONSTRAINTS, "-e", ".[tf]")
    args = session.posargs or ["--out", "report"]
    session.run("soundanomaly", "demo", *args, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})


@nox.session(default=False)
def benchmarks(session: nox.Session) -> None:
    """Speed and memory benchmarks (not part of the test suite), PyOD's AudioAE alongside."""
    # torch==2.13.0 is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
    # pyod's deep models import tqdm without declaring it.
    session.install(*CONSTRAINTS, "-e", ".[tf]", "pyod==3.6.7", "torch==2.13.0", "tqdm")
    session.run("python", "benchmarks/run.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(default=False)
def shift(session: nox.Session) -> None:
    """Domain-shift benchmark (issue 22): DCASE-style table on the synthetic shift set, every detector (~15 min)."""
    session.install(*CONSTRAINTS, "-e", ".[tf]")
    session.run("python", "benchmarks/shift.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(default=False)
def quality(session: nox.Session) -> None:
    """Detection quality in noise (issue 14): SNR x severity x fault grid, every detector (8-15 min on 2 cores)."""
    session.install(*CONSTRAINTS, "-e", ".[tf]")
    session.run("python", "benchmarks/quality.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(default=False)
def scale(session: nox.Session) -> None:
    """Scale-out (issue 24): clips/s on 1 and 2 Dask workers, a 100,000-clip job interrupted and resumed (~5 min)."""
    session.install(*CONSTRAINTS, "-e", ".[dask]")
    session.run("python", "benchmarks/scale.py", *session.posargs)


@nox.session(default=False)
def container(session: nox.Session) -> None:
    """SageMaker training code under the TF 2.16 image's Python 3.10, TensorFlow 2.16.2 and Keras 3.4.1."""
    session.install(*CONSTRAINTS, "-e", ".[tf,aws,test,export]")
    image = os.path.join(".nox", "container-image")
    if not os.path.exists(os.path.join(image, "bin", "python")):
        import glob  # pyenv's own build first: its shims need `pyenv global` to expose python3.10

        found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python3.10")), reverse=True)
        session.run(found[0] if found else "python3.10", "-m", "venv", image, external=True)
    session.run(
        os.path.join(image, "bin", "python"), "-m", "pip", "install", "-q",
        "tensorflow-cpu==2.16.2", "keras==3.4.1", "numpy<2", external=True,
    )  # fmt: skip
    python = os.path.abspath(os.path.join(image, "bin", "python"))
    session.run(
        "pytest", "tests/test_aws_container.py", *session.posargs,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "SOUNDANOMALY_CONTAINER_PYTHON": python},
    )  # fmt: skip


if os.environ.get("CI"):
    nox.options.reuse_existing_virtualenvs = False


@nox.session(default=False)
def edge(session: nox.Session) -> None:
    """Edge export (issue 25): ONNX parity on the real clips, int8 TFLite AUC, sizes, latency, runtime footprint."""
    session.install(*CONSTRAINTS, "-e", ".[tf,export]")
    session.run("python", "benchmarks/edge.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
