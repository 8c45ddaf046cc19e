"""A scan of pickles, opcode by opcode, for what would make an unpickler hang or exhaust memory.

It builds nothing and imports no torch, so the readers of REFER pickles, TorchScript archives and torch
checkpoints can all run it before they unpickle.
"""

from __future__ import annotations

import pickletools
import re
from typing import BinaryIO

_MEMO_OPCODES = ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET")
_DOTTED_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_PYTHON_GLOBAL = re.compile(f"{_DOTTED_NAME} {_DOTTED_NAME}", re.ASCII)  # GLOBAL's argument: "module name"


def pickle_opcodes_problem(file: BinaryIO, pickles: int = 1) -> str | None:
    """Parse the next ``pickles`` pickles of ``file`` opcode by opcode (linear in its size, nothing built);
    what makes them unsafe to hand to an unpickler, or None.

    Refused: a global that is not a dotted Python name (torch words its refusal of a global with regular
    expressions whose time grows with the cube of the name's length), and a memo index past
    the opcode's own position, which no pickler writes: C's unpickler grows its memo to the index at once,
    so ``LONG_BINPUT 4294967295`` (10 bytes) would take 32 GB. Raises what :func:`pickletools.genops`
    raises on a pickle that does not parse (ValueError, ...).
    """
    for _ in range(pickles):
        for opcode, argument, position in pickletools.genops(file):
            if opcode.name in _MEMO_OPCODES and isinstance(argument, int) and argument > (position or 0):
                return f"a pickle's memo index {argument:,} at byte {position} is past any object"
            if opcode.name in ("GLOBAL", "INST"):
                name = str(argument)
                if len(name) > 1000 or not _PYTHON_GLOBAL.fullmatch(name):
                    return f"a pickle names the global {name[:80]!r}, which is no Python name"
    return None
