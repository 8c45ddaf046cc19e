"""``main``: run a ``risam`` subcommand; every error becomes one readable line and an exit code."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from risam.cli.flags import in_flags
from risam.cli.parser import build_parser
from risam.cli.text import terminal_safe


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``risam`` with ``argv`` (default: the process arguments); returns the exit code.

    Bad input (a file, image, expression, config, checkpoint or argument that cannot be used,
    a file that cannot be read or written) prints one readable line to stderr and returns 2,
    never a traceback. An unexpected failure prints one line naming it and returns 1; set
    RISAM_TRACEBACK=1 to see its traceback. A warning is one line, ``risam COMMAND: warning: ...``. Both
    name the command's flags where the library names a parameter (:mod:`risam.cli.flags`).
    The process keeps freed memory for reuse (:func:`risam.cpu_memory.reuse_freed_memory`).
    """
    from risam.cpu_memory import reuse_freed_memory
    from risam.errors import InputError, error_line

    args = build_parser().parse_args(argv)
    reuse_freed_memory()
    try:
        with _one_line_warnings(args.command):
            return args.run(args)
    except (InputError, OSError) as error:
        message = in_flags(args.command, error_line(error))
        print(f"risam {args.command}: error: {terminal_safe(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"risam {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("RISAM_TRACEBACK"):
            raise
        message = f"{type(error).__name__}: {error}"
        print(
            f"risam {args.command}: internal error: {terminal_safe(message)} "
            "(rerun with RISAM_TRACEBACK=1 for the traceback, and report it)",
            file=sys.stderr,
        )
        return 1


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Inside the block, a warning prints as ``risam COMMAND: warning: MESSAGE``, without a source line."""
    previous = warnings.formatwarning

    def format_warning(message: Warning | str, *_: object, **__: object) -> str:
        return f"risam {command}: warning: {terminal_safe(in_flags(command, str(message)))}\n"

    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous
