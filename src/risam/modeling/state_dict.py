"""Strict state-dict loading with errors that name the keys and the file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint file does not fit the model; the message names the file and the keys."""


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``, refusing missing, unexpected or mis-shaped keys.

    ``source`` names where the weights come from (a file path) for the error message.
    """
    check_state_dict(module.state_dict(), state_dict, source, type(module).__name__)
    module.load_state_dict(dict(state_dict), strict=True)


def check_state_dict(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], source: str, target: str
) -> None:
    """Raise CheckpointError unless ``found`` has exactly the keys and shapes of ``expected``.

    All problems are reported at once, each mis-shaped key with the shape in the file and in
    the model; ``source`` (a file) and ``target`` (what it is loaded into) name both sides.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(
        f"{key}: file {tuple(found[key].shape)}, model {tuple(expected[key].shape)}"
        for key in set(expected) & set(found)
        if tuple(found[key].shape) != tuple(expected[key].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_shorten(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_shorten(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}): {_shorten(misshaped)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {target}: " + "; ".join(problems))


def _shorten(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items) - limit} more)"


def torch_load_weights_only(path: Path, expected: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file.

    Bytes that are not a checkpoint fail inside torch's unpickler in many ways
    (UnpicklingError, RuntimeError, EOFError, KeyError, ...), and ``weights_only`` refuses
    pickled objects other than tensors and containers: all become a CheckpointError that
    names ``path`` and says what was ``expected``. A missing file is a FileNotFoundError.
    """
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} ({expected})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read as a checkpoint ({type(err).__name__}); {expected}. Pickles are read with "
            "weights_only=True, which refuses objects other than tensors and containers."
        ) from err
