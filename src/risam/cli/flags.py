"""The command line's words for what a library message names: its flags in place of Python parameters.

The library's errors and warnings name the parameter or config key a user would change
(``sam_checkpoint=``, ``block=``, ``override 'x'``), because they reach Python callers too. The
command line says the same thing in its own flags before it prints the line.
"""

from __future__ import annotations

import re

# Commands that take a trained model's files as flags (--sam-checkpoint, ...).
_MODEL_FILE_FLAGS = (
    (r"(?<![\w.])sam_checkpoint= ?", "--sam-checkpoint "),
    (r"(?<![\w.])clip_checkpoint= ?", "--clip-checkpoint "),
)
# Commands that read an experiment config and take ``--set KEY=VALUE``.
_CONFIG_FLAGS = (
    (r"(?<![\w.])sam_checkpoint= ", "--set model.sam_checkpoint=PATH: "),
    (r"(?<![\w.])clip_checkpoint= ", "--set model.clip_checkpoint=PATH: "),
    (r"^override ", "--set "),
    (r"the override (?=[\w.]+=)", "--set "),
)
FLAGS_OF_COMMAND: dict[str, tuple[tuple[str, str], ...]] = {
    "segment": _MODEL_FILE_FLAGS,
    "demo": _MODEL_FILE_FLAGS,
    "explain": (
        *_MODEL_FILE_FLAGS,
        (r"^block=", "--block "),
        (r"^pixel=\((-?\d+), (-?\d+)\)", r"--pixel \1 \2"),
        (r"0 <= x < ", "0 <= X < "),
        (r"0 <= y < ", "0 <= Y < "),
    ),
    "train": (*_CONFIG_FLAGS, (r"^resume: ", "--resume: ")),
    "evaluate": _CONFIG_FLAGS,
    "ablate": (*_CONFIG_FLAGS, (r"another out= folder", "another --out")),
}


def in_flags(command: str, message: str) -> str:
    """``message`` (one line of an error or warning of ``risam COMMAND``) with the parameters it names
    in the flags of ``command``; unchanged for a command with no such flags."""
    for pattern, replacement in FLAGS_OF_COMMAND.get(command, ()):
        message = re.sub(pattern, replacement, message)
    return message
