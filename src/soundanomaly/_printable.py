"""Text from files (names, paths, groups) made safe to print on a terminal, in a log line or a Markdown cell.

A file name may hold escape sequences (``\\x1b[2J``), newlines (forging a
``soundanomaly: warning:`` line), bidirectional overrides, or ``|`` (an extra
Markdown column). Every name the library prints goes through :func:`printable`.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, line/paragraph separators and the bidirectional embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, markdown: bool = False) -> str:
    """``str(text)`` with control and bidi characters escaped (``\\x1b``, ``\\n``); ``markdown`` also escapes ``|``.

    Examples
    --------
    >>> printable("fan\\x1b[2J.wav"), printable("a\\nsoundanomaly: warning: x")
    ('fan\\\\x1b[2J.wav', 'a\\\\nsoundanomaly: warning: x')
    >>> printable("id_00|evil", markdown=True)
    'id_00\\\\|evil'
    """
    out = _UNSAFE.sub(_escape, str(text))
    return out.replace("|", "\\|") if markdown else out
