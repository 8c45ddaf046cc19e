"""The ``risam`` command line. ``main(argv)`` returns the exit code and is testable.

``parser`` builds the arguments of every subcommand, ``commands`` holds what each subcommand runs,
``run`` turns every error into one readable line and an exit code.
"""

from risam.cli.run import main
from risam.cli.text import argument_text, terminal_safe

__all__ = ["argument_text", "main", "terminal_safe"]
