"""Zip archives unpacked into place, and fetched files and folders moved there.

:func:`unpack_zip` goes through a staging folder next to the archive, so that a broken unpacking leaves
nothing half-written at the destination; members that would land outside it are refused.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from risam.io.download import DownloadError


def unpack_zip(archive: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Unpack the zip ``archive`` into the folder ``destination`` (merged with what is there already).

    The archive is unpacked into ``<archive>.unpacked`` first, then its entries are moved into place
    (:func:`move_into`) and the staging folder is removed. DownloadError, in one line naming the archive,
    for a member whose path leaves ``destination`` (absolute, ``..``, a drive) and for an archive that is
    not a readable zip, which is then removed.
    """
    archive, destination = Path(archive), Path(destination)
    staging = archive.with_name(archive.name + ".unpacked")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                parts = PurePosixPath(member.replace("\\", "/")).parts
                if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
                    raise DownloadError(f"{archive}: member {member!r} would be written outside {destination}")
            bundle.extractall(staging)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        archive.unlink()
        raise DownloadError(f"{archive} is not a readable zip archive ({error}); it was removed, run again") from error
    for entry in sorted(staging.iterdir()):
        move_into(entry, destination / entry.name)
    shutil.rmtree(staging)


def move_into(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the file or folder ``source`` to ``target``; a folder into a folder that exists already goes entry by
    entry. Missing parent folders are created."""
    source, target = Path(source), Path(target)
    if target.is_dir() and source.is_dir():
        for entry in sorted(source.iterdir()):
            move_into(entry, target / entry.name)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)  # a rename, or a copy where the folders lie on other disks
