"""The one way risam writes a file that others read: atomically, with the usual permissions.

Guarantees of :func:`atomic_write` and :func:`atomic_path`:

- Readers see the old file or the complete new one, never a half-written file: the data go to a
  temporary file in the destination's folder, named ``.{name}.{8 hex digits}.tmp``, which is
  flushed to disk (``fsync``) and then renamed over the destination (``os.replace``, atomic on
  POSIX and Windows within one file system); the folder is synced after the rename on POSIX, so
  the rename itself survives a power cut.
- Permissions are those of a plain ``open(path, "w")``: the temporary file is created with mode
  ``0o666``, the kernel takes the process umask (and any default ACL of the folder) off it, and
  the bits it granted are set again before the rename, in case the writer of :func:`atomic_path`
  replaced the file (``safetensors.torch.save_file`` does, with mode ``0o600``). The umask is
  never read, so nothing races with other threads changing it (``os.umask`` is process-wide).
  The destination's earlier mode, if any, is not kept.
- On any error inside the block (an exception, ``KeyboardInterrupt``) the temporary file is removed
  and the destination is left as it was. A process killed outright (SIGKILL, power loss) can leave
  the temporary file behind: :func:`remove_stale_temporaries` deletes such leftovers, and only them.
- The destination's missing parent folders are created.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from risam.errors import InputError

# ``.{name}.{random}.tmp``: 8 hex digits here; mkstemp's 8 characters of [a-z0-9_] in earlier versions.
_TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]+\.tmp")


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new empty file ``.{name}.{random}.tmp`` next to ``path``, created with mode 0o666 less the umask,
    and the permission bits the kernel gave it."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            return temporary, stat.S_IMODE(os.fstat(descriptor).st_mode)
        finally:
            os.close(descriptor)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush ``path``'s data to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, sync_folder: bool = True) -> Iterator[Path]:
    """Yield the path of a new empty temporary file next to ``path`` for a writer that wants a file name
    (``torch.save``); when the block ends without error it replaces ``path``.

    ``sync_folder=False`` leaves the folder's sync (which makes the rename survive a power cut) to the
    caller, who writes several files there and then calls :func:`fsync_path` on the folder once.

    The writer must write to the yielded path (overwriting the empty file is fine). A writer that goes
    through a temporary file of its own (``safetensors.torch.save_file`` writes ``.tmpXXXXXX`` and renames
    it) can leave that one behind when killed, which :func:`remove_stale_temporaries` does not know: give
    such writers' bytes to :func:`atomic_write` instead (``safetensors.torch.save``). See the module
    docstring for the guarantees.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, mode = _create_temporary(path)
    try:
        yield temporary
        # The writer may have put a new file there: safetensors writes its own temporary file, mode 0o600.
        os.chmod(temporary, mode)
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync_folder and os.name == "posix":
        fsync_path(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """Yield a file object open for writing (``"w"``: text in UTF-8, newlines written as given, no
    translation; ``"wb"``: bytes); when the block ends without error the file replaces ``path``.

    See the module docstring for the guarantees.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as temporary:
        text = mode == "w"
        with open(temporary, mode, encoding="utf-8" if text else None, newline="" if text else None) as handle:
            yield handle


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the bytes of the file ``source`` to ``target`` atomically (not its permissions or times)."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` to ``path`` atomically as JSON indented by 2, with a final newline."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that atomic writes killed midway left in ``folder`` (not its subfolders);
    returns them, sorted.

    Only regular files named like ours, ``.{name}.{random}.tmp``, are removed; nothing else is touched,
    and a missing folder holds nothing. Call it only while no atomic write into ``folder`` is under way
    (e.g. when a run resumes): an unfinished write's temporary file looks the same.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if _TEMPORARY_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def readable_file(path: str | os.PathLike, what: str) -> Path:
    """``path``, once it is known to be a file this process can read; ``what`` names it in errors.

    A missing path raises FileNotFoundError; a folder or a file the process may not read raises
    InputError, each one line naming ``path`` and what is wrong with it.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}")
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what} ({error.strerror or error})") from error
    return path
