"""Files fetched over HTTP(S): resumed after an interruption, checked against a SHA-256, renamed into place.

:func:`fetch` is the one way risam downloads. It writes to ``<name>.part`` next to the destination,
continues a ``.part`` left by an earlier attempt with an HTTP ``Range`` request (a server that
ignores the range sends the whole file, which then starts over), retries an interrupted transfer
from where it stopped, checks the SHA-256 where one is known (a file that fails is removed), and
renames the finished file into place, so the destination is complete or absent. Files get the
permissions of a plain ``open`` under the user's umask. A progress bar shows bytes, rate and ETA.

Why not a library: ``torch.hub.download_url_to_file`` and pooch both check hashes and rename into
place, but both start an interrupted transfer from zero, which for SAM ViT-H (2.4 GiB) or COCO's
train2014 (13 GiB) is the case that matters. The transfer here is the standard library's
``urllib`` (redirects, proxies from the environment, HTTPS) and ``tqdm`` (already a dependency).

Files on the Hugging Face Hub (models by ``hf-hub:`` name, the encoders' Hub copies) come through
``huggingface_hub`` instead (:mod:`risam.io.hub`); this module serves what is not on the Hub: Meta's and
OpenAI's official URLs and the datasets' files.

Downloaded weights live in the cache :func:`risam_home` (``$RISAM_HOME``, by default
``~/.cache/risam``), as timm's and open_clip's ``pretrained`` files live in Hugging Face's cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shlex
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from risam.errors import InputError
from risam.io.files import fsync_path
from risam.version import __version__

HOME_VARIABLE = "RISAM_HOME"
ATTEMPTS = 3  # transfers per fetch: an interrupted one is resumed twice before giving up
TIMEOUT_SECONDS = 60.0  # for connecting and for each read
LOCK_FILE = ".fetch.lock"  # in each folder that files are fetched into; locked while a file is fetched
_CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(InputError):
    """A file could not be fetched or failed its check; the message says what was tried and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its URL, the name it is stored under, and its SHA-256 (hex) where one is published."""

    url: str
    file_name: str
    sha256: str | None = None


def risam_home() -> Path:
    """risam's cache folder: ``$RISAM_HOME`` if set, else ``~/.cache/risam``."""
    configured = os.environ.get(HOME_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "risam"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def manual_command(url: str, destination: Path) -> str:
    """The shell command that fetches ``url`` to ``destination`` by hand (resuming, following redirects)."""
    return f"curl -L -C - -o {shlex.quote(str(destination))} {shlex.quote(url)}"


def fetch(remote: RemoteFile, folder: str | os.PathLike, progress: bool = True, recheck: bool = False) -> Path:
    """``folder / remote.file_name``, fetched from ``remote.url`` unless it is already there.

    A file already in place is returned as it is (it was checked when it arrived), or with ``recheck``
    checked again (:func:`verify`). DownloadError, in one line, when the server cannot be reached or
    answers with an error, when the transfer keeps breaking off (the ``.part`` file is kept for the next
    attempt), or when the SHA-256 differs (the file is removed); the message names the URL and the
    command that would place the file by hand.
    """
    destination = Path(folder) / remote.file_name
    if destination.is_file():
        if recheck:
            verify(remote, destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(destination.parent):
        if destination.is_file():  # another process fetched it while this one waited
            return destination
        _fetch_locked(remote, destination, progress)
    return destination


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file :data:`LOCK_FILE` in ``folder`` (``flock``, released when the process
    dies), so that processes started together (the ranks of ``torchrun``) fetch a file once, not into the same
    ``.part`` at once. Where locks are unavailable (Windows; NFS or Lustre without lock support) the fetch goes
    on unlocked, with a warning naming the folder."""
    if fcntl is None:
        yield
        return
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError as error:
            warnings.warn(
                f"{folder}: cannot lock ({error.strerror}); processes fetching the same file at once would collide",
                stacklevel=4,
            )
        yield


def _fetch_locked(remote: RemoteFile, destination: Path, progress: bool) -> None:
    """:func:`fetch`'s work, once the folder is locked: transfer (with retries), check, rename into place."""
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _transfer(remote.url, partial, progress)
            break
        except _Interrupted as interruption:
            if attempt == ATTEMPTS:
                raise DownloadError(
                    f"{remote.url}: the transfer broke off {ATTEMPTS} times ({interruption}); {partial} is kept "
                    f"and the same command resumes it, or fetch it by hand: {manual_command(remote.url, destination)}"
                ) from interruption
    if remote.sha256 is not None:
        actual = sha256_of(partial)
        if actual != remote.sha256:
            partial.unlink()
            raise DownloadError(
                f"{remote.url}: the file's SHA-256 is {actual}, expected {remote.sha256}; it was removed. "
                "A proxy or mirror may have served another file: try again, or fetch it by hand: "
                f"{manual_command(remote.url, destination)}"
            )
    fsync_path(partial)
    os.replace(partial, destination)


def verify(remote: RemoteFile, path: str | os.PathLike) -> str:
    """The SHA-256 of ``path``; DownloadError if ``remote`` publishes another one (the file is left in place)."""
    actual = sha256_of(path)
    if remote.sha256 is not None and actual != remote.sha256:
        raise DownloadError(
            f"{path}: SHA-256 is {actual}, but {remote.url} publishes {remote.sha256}; delete the file and fetch "
            f"it again: {manual_command(remote.url, Path(path))}"
        )
    return actual


class _Interrupted(Exception):
    """The connection broke off during a transfer; what arrived is in the ``.part`` file."""


def _transfer(url: str, partial: Path, progress: bool) -> None:
    """Append the rest of ``url`` to ``partial`` (all of it when ``partial`` is absent or the server ignores
    the range). Raises _Interrupted when the connection breaks off, DownloadError on any other failure."""
    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": f"risam/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    destination = partial.with_name(partial.name.removesuffix(".part"))
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing from ``start`` on: complete if the file has exactly that size
            if _range_total(error.headers) == start:
                return
            partial.unlink()
            raise _Interrupted(f"{partial} did not match the file on the server and was removed") from error
        raise DownloadError(
            f"{url}: the server answered HTTP {error.code} {error.reason}; check the name and the URL, or fetch "
            f"it by hand: {manual_command(url, destination)}"
        ) from error
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        kept = f"; {partial} keeps the {start} bytes that arrived, and the same command resumes it" if start else ""
        raise DownloadError(
            f"could not reach {url} ({reason}){kept}; with no network, fetch it on a machine that has one and place "
            f"it there: {manual_command(url, destination)}"
        ) from error
    with response:
        if response.status == 206 and _range_start(response.headers) != start:
            response.close()
            partial.unlink(missing_ok=True)
            raise _Interrupted(f"the server sent another range than bytes {start}-; starting over")
        resumed = start if response.status == 206 else 0
        length = response.headers.get("Content-Length")
        total = resumed + int(length) if length and length.isdigit() else None
        received = resumed
        with (
            open(partial, "ab" if resumed else "wb") as handle,
            tqdm(
                total=total,
                initial=resumed,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=destination.name,
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK_BYTES):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise _Interrupted(f"after {received} bytes: {error}") from error
    if total is not None and received < total:
        raise _Interrupted(f"after {received} of {total} bytes")


def _range_start(headers: Message) -> int | None:
    """The first byte a 206 response holds, from its Content-Range header; None if it has none."""
    match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    return int(match.group(1)) if match else None


def _range_total(headers: Message) -> int | None:
    """The file's size from a Content-Range header (``bytes */N`` of a 416 answer); None if not stated."""
    match = re.fullmatch(r"bytes \*/(\d+)", headers.get("Content-Range", "").strip())
    return int(match.group(1)) if match else None
