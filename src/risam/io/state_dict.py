"""Strict state-dict loading with errors that name the keys and the file."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from risam.errors import InputError, error_line
from risam.io.files import readable_file
from risam.io.pickle_scan import pickle_opcodes_problem

# The legacy (non-zip) torch.save format: magic number, protocol, system info, the object, the storage keys.
_LEGACY_PICKLES = 5
_MAX_PICKLE_BYTES = 1 << 28


class CheckpointError(InputError):
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


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip holding ``<root>/constants.pkl``.

    That is how torch tells them from torch.save zips, and ``torch.load`` hands them to
    ``torch.jit.load`` (before torch 2.6 even with ``weights_only=True``), which runs the code
    they hold.
    """
    names = _zip_names(path)
    return names is not None and any(name.split("/", 1)[-1] == "constants.pkl" for name in names)


def _zip_names(path: Path) -> list[str] | None:
    """The entries of the zip archive at ``path``; None if :mod:`zipfile` cannot list them."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError):  # NotImplementedError: "zip file version"
        return None


def _pickle_problem(path: Path) -> str | None:
    """What makes the pickles of the checkpoint ``path`` unfit for torch.load, or None.

    Every opcode is parsed (:func:`pickletools.genops`, linear in the file): a pickle that does not parse
    is damaged; a global that is not a dotted Python name is refused here, because torch words its refusal
    with regular expressions whose time grows with the cube of the name's length (a name of 500 kB held it
    for hours). In a zip, ``data.pkl`` is checked (and its size, which torch reads into memory at once); in
    the legacy format, the pickles before the tensor bytes.
    """
    names = _zip_names(path)
    try:
        if names is None:
            with path.open("rb") as file:
                return pickle_opcodes_problem(file, _LEGACY_PICKLES)
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith("data.pkl"):
                    if info.file_size > _MAX_PICKLE_BYTES:
                        return f"{info.filename} holds {info.file_size:,} bytes, over {_MAX_PICKLE_BYTES:,}"
                    with archive.open(info) as file:
                        problem = pickle_opcodes_problem(file)
                    if problem:
                        return problem
    except Exception as error:  # zipfile, zlib and pickletools fail on damaged bytes in many ways
        return f"a damaged pickle: {type(error).__name__}: {error_line(error)}"
    return None


def torch_load_weights_only(path: Path, expected: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file.

    Bytes that are not a checkpoint fail inside torch's unpickler in many ways
    (UnpicklingError, RuntimeError, EOFError, KeyError, ...), and ``weights_only`` refuses
    pickled objects other than tensors and containers: all become a CheckpointError that
    names ``path`` and says what was ``expected``. TorchScript archives, which run their code
    when loaded, never reach torch: neither does a file that starts like a zip (as torch
    checks) but that :mod:`zipfile` cannot list, in which torch's own zip reader might still
    find one. A missing file is a FileNotFoundError; a folder or an unreadable file an InputError.
    """
    path = readable_file(path, "checkpoint")
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive, which runs its own code when loaded; refused, nothing in it was run; "
            f"{expected}"
        )
    with path.open("rb") as file:
        if file.read(4) == b"PK\x03\x04" and _zip_names(path) is None:
            raise CheckpointError(
                f"{path} could not be read as a checkpoint (a damaged zip archive, not handed to torch); {expected}"
            )
    problem = _pickle_problem(path)
    if problem:
        raise CheckpointError(f"{path} could not be read as a checkpoint ({problem}, not handed to torch); {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        if err.filename is not None:  # the system's error about the file; torch's reader raises some without one
            raise
        raise CheckpointError(f"{path} could not be read as a checkpoint ({error_line(err)}); {expected}") from err
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read as a checkpoint ({type(err).__name__}); {expected}. Pickles are read with "
            "weights_only=True, which refuses objects other than tensors and containers."
        ) from err
