"""Lazy, deterministic listings of clips: local folders, globs and ``s3://`` prefixes.

A listing is a generator: names are produced one directory (or one S3 page
of 1,000 keys) at a time, never all at once. The order is fixed (sorted
names; S3 lists keys in UTF-8 byte order), so the same source always gives
the same sequence and the same shards.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from soundanomaly.exceptions import ParameterError, SoundAnomalyError

__all__ = ["iter_clips", "iter_shards", "shard_digest"]

#: File suffixes listed from a folder, a glob or a prefix (any case, as in MIMII and DCASE).
AUDIO_SUFFIXES = (".wav",)
_GLOB_CHARS = frozenset("*?[")


def iter_clips(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield the clips of one or more sources, lazily and in a fixed order.

    Parameters
    ----------
    sources : str, os.PathLike or iterable of them
        Each one is a ``.wav`` file, a folder (searched recursively for
        ``*.wav``, any case), a glob (``data/*/id_00/**/*.wav``: ``*``, ``?``
        and ``[...]`` match within one folder name, ``**/`` any depth) or an ``s3://bucket/prefix`` (every ``.wav`` key under it;
        needs ``soundanomaly[aws]``). An ``s3://`` URL ending in ``.wav`` is
        one clip.

    Yields
    ------
    str
        Local paths as given (joined with the folder), or ``s3://`` URLs.

    Raises
    ------
    SoundAnomalyError
        A local source that does not exist, or a source that holds no clip.

    Examples
    --------
    >>> import os
    >>> os.makedirs("site/b", exist_ok=True); os.makedirs("site/a", exist_ok=True)
    >>> for name in ("site/b/2.wav", "site/a/1.WAV", "site/a/notes.txt"):
    ...     _ = Path(name).write_bytes(b"")
    >>> list(iter_clips("site"))
    ['site/a/1.WAV', 'site/b/2.wav']
    >>> list(iter_clips("site/*/2.wav"))
    ['site/b/2.wav']
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    for source in sources:
        name = os.fspath(source)
        if not isinstance(name, str):
            raise ParameterError(f"a source must be a str or os.PathLike, got {source!r}")
        found = False
        for clip in _iter_one(name):
            found = True
            yield clip
        if not found:
            raise SoundAnomalyError(f"{name}: holds no .wav clips")


def _iter_one(name: str) -> Iterator[str]:
    if name.startswith("s3://"):
        if _is_audio(name) and not any(c in name for c in _GLOB_CHARS):
            yield name
        else:
            yield from _iter_s3(name)
        return
    if "://" in name:
        raise ParameterError(f"{name}: unsupported source; give a local folder, a glob or an s3:// prefix")
    if any(c in name for c in _GLOB_CHARS):
        yield from _iter_glob(name)
        return
    path = Path(name)
    if path.is_dir():
        yield from _walk(name, name)
    elif path.is_file():
        yield name
    else:
        raise SoundAnomalyError(f"{name}: no such file or folder")


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES)


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Glob test: ``*``, ``?`` and ``[...]`` stay within one folder name; ``**/`` spans zero or more folders."""
    pieces = []
    for i, part in enumerate(pattern.split("**/")):
        if i:
            pieces.append("(?:.*/)?")
        for token in re.split(r"(\*|\?|\[[^\]]*\])", part):
            if token == "*":
                pieces.append("[^/]*")
            elif token == "?":
                pieces.append("[^/]")
            elif token.startswith("[") and token.endswith("]") and len(token) > 2:
                body = token[1:-1]
                pieces.append("[^" + re.escape(body[1:]) + "]" if body[0] == "!" else "[" + re.escape(body) + "]")
            else:
                pieces.append(re.escape(token))
    compiled = re.compile("".join(pieces) + r"\Z")
    return lambda name: compiled.match(name) is not None


def _walk(top: str, shown: str) -> Iterator[str]:
    """Depth-first walk of ``top`` in sorted order, one directory listing in memory at a time."""
    try:
        with os.scandir(top) as entries:
            listing = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    except OSError as exc:
        raise SoundAnomalyError(f"{top}: cannot list ({exc.strerror or exc})") from exc
    for entry, is_dir in listing:
        path = os.path.join(shown, entry)
        if is_dir:
            yield from _walk(os.path.join(top, entry), path)
        elif _is_audio(entry) and os.path.isfile(path):
            yield path


def _iter_glob(pattern: str) -> Iterator[str]:
    """Walk the folder before the first wildcard and keep the names that match ``pattern``."""
    pattern = os.path.normpath(pattern)
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda part: not any(c in part for c in _GLOB_CHARS), parts))
    base = os.path.join(*fixed) if fixed else "."
    if not os.path.isdir(base):
        raise SoundAnomalyError(f"{pattern}: {base} is not a folder")
    matcher = _matcher(pattern)
    if not fixed:
        yield from (clip for clip in _walk(".", "") if matcher(clip))
        return
    yield from (clip for clip in _walk(base, base) if matcher(clip))


def _iter_s3(url: str) -> Iterator[str]:
    """Keys under an ``s3://bucket/prefix`` (a glob after the prefix filters them), one page at a time."""
    try:
        import boto3
    except ImportError as exc:
        from soundanomaly.exceptions import MissingDependencyError

        raise MissingDependencyError("boto3", "aws", f"listing {url}") from exc
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ParameterError(f"{url}: malformed S3 URL: expected s3://bucket/prefix")
    cut = min((key.index(c) for c in _GLOB_CHARS if c in key), default=len(key))
    prefix, matcher = key[:cut], (_matcher(key) if cut < len(key) else None)
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = str(item["Key"])
                if _is_audio(name) and (matcher is None or matcher(name)):
                    yield f"s3://{bucket}/{name}"
    except Exception as exc:  # botocore's errors: credentials, network, missing bucket
        if isinstance(exc, SoundAnomalyError):
            raise
        raise SoundAnomalyError(f"{url}: cannot list ({type(exc).__name__}: {exc})") from exc


def iter_shards(clips: Iterable[str], shard_size: int) -> Iterator[tuple[int, list[str]]]:
    """Cut a listing into consecutive shards ``(index, names)`` of ``shard_size`` clips (the last may be shorter).

    Examples
    --------
    >>> [(i, names) for i, names in iter_shards("abcde", 2)]
    [(0, ['a', 'b']), (1, ['c', 'd']), (2, ['e'])]
    """
    iterator = iter(clips)
    for index in itertools.count():
        names = list(itertools.islice(iterator, shard_size))
        if not names:
            return
        yield index, names


def shard_digest(names: Iterable[str]) -> str:
    """Hex digest of a shard's clip names: a resumed job checks that the listing did not change.

    Examples
    --------
    >>> shard_digest(["a.wav", "b.wav"]) == shard_digest(["a.wav", "b.wav"]) != shard_digest(["b.wav"])
    True
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in names:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()
