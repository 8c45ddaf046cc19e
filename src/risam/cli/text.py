"""Command-line text: arguments as valid Unicode, output without raw control characters."""

from __future__ import annotations

import os


def terminal_safe(text: str) -> str:
    """``text`` with control characters (escape sequences, newlines) shown as escapes, never sent raw."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def argument_text(text: str) -> str:
    """A command-line argument as valid Unicode: bytes that were not UTF-8 become U+FFFD.

    Python keeps such bytes as lone surrogates, which no UTF-8 writer (JSON, PNG text) accepts.
    """
    return os.fsencode(text).decode("utf-8", errors="replace")
