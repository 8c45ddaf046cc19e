"""How every benchmark's command line ends: its JSON on stdout, or, for an input it cannot use (an unknown
model, a bad config value: an InputError) or an OSError (a file missing or that cannot be read or written, a
port in use), one line ``NAME: error: ...`` on stderr and exit code 2, as the ``risam`` command does. Other
exceptions are the benchmark's own defects and keep their traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from risam.errors import InputError, error_line


def run(main: Callable[[], object]) -> None:
    """Call a benchmark's ``main``; an InputError or OSError becomes one line on stderr and exit code 2."""
    try:
        main()
    except (InputError, OSError) as error:
        print(f"{Path(sys.argv[0]).stem}: error: {error_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
