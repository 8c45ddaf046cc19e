"""The one base class of the errors that a user's input causes.

A file, image, expression, config value or command-line argument that cannot be used raises a
subclass of :class:`InputError` (ConfigError, ImageInputError, AnnotationError, CheckpointError,
ExpressionError, ExplainError) whose message is one line naming the input and what would be
right. The command line prints that line and exits with code 2; the demo shows it on the page.
"""

from __future__ import annotations

import reprlib
import sys
from typing import Any


class InputError(ValueError):
    """Input from the user cannot be used; the message names it and what would be right."""


def error_line(error: Exception, name: object = None) -> str:
    """The message of ``error`` as one line; for an OSError, its files and the reason (``x.png: Permission
    denied``), ``name`` standing for the file when the error names none."""
    if isinstance(error, OSError) and error.strerror:
        names = [str(item) for item in (error.filename, error.filename2) if item is not None]
        names = names or ([str(name)] if name is not None else [])
        return f"{' -> '.join(names)}: {error.strerror}" if names else error.strerror
    return str(error)


def conversion_problem(error: ValueError) -> str:
    """What a ValueError raised inside a JSON or YAML parser says, as one line: a number over Python's limit on
    an int's digits by that limit, any other value (such as a YAML date out of range) by the error's reason."""
    if "integer string conversion" in str(error):
        return f"a number of more than {sys.get_int_max_str_digits():,} digits"
    return " ".join(str(error).split())


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 8


def shown(value: Any) -> str:
    """``repr(value)`` cut short for an error message: a YAML alias bomb or a pickle's shared lists hold
    billions of items behind a few bytes, and their full repr would never end. An int too long for Python to
    print (over 4,300 digits) is shown by its size."""
    try:
        return _SHOWN.repr(value)
    except ValueError:
        if isinstance(value, int):
            return f"<an integer of {value.bit_length():,} bits>"
        return f"<a {type(value).__name__}>"
