"""Files on the Hugging Face Hub: trained models and encoder files by name, and uploads of an exported model.

A name is ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION`` (a branch, a tag or a commit id; by default
the repo's ``main``), the form timm and open_clip take. Everything goes through ``huggingface_hub``
(``hf_hub_download``, ``get_paths_info``, ``create_commit``), so its cache (``HF_HOME``, ``HF_HUB_CACHE``),
endpoint (``HF_ENDPOINT``), login (``hf auth login``, ``HF_TOKEN``) and offline mode (``HF_HUB_OFFLINE=1``)
apply, and a transfer that breaks off is resumed by the library. Whatever fails becomes one
:class:`HubError` line that names the repo and what to do.

A risam model repo is what ``risam export RUN FOLDER`` writes: ``model.safetensors`` (a RISAM weights
file, :mod:`risam.io.weights`), ``config.json`` (``library_name: risam``, the model's config) and a model
card ``README.md``. Both files are taken from one commit.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from risam.errors import InputError, error_line
from risam.io.download import sha256_of
from risam.io.reading import read_json

HUB_PREFIX = "hf-hub:"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
LIBRARY_NAME = "risam"
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_Result = TypeVar("_Result")


class HubError(InputError):
    """A Hub repo, revision or file that cannot be had; the message names it and what to do."""


@dataclass(frozen=True)
class HubName:
    """A repo on the Hub and the revision asked for (None: its default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return HUB_PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "")


def is_hub_name(value: object) -> bool:
    """Whether ``value`` (a string or path) is written as a Hub name, ``hf-hub:...``."""
    return isinstance(value, (str, os.PathLike)) and os.fspath(value).startswith(HUB_PREFIX)


def parse_hub_name(value: str | os.PathLike) -> HubName:
    """``hf-hub:ORG/NAME[@REVISION]`` as a :class:`HubName`; HubError naming the value otherwise."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = os.fspath(value)
    repo_id, at, revision = text.removeprefix(HUB_PREFIX).partition("@")
    expected = "write hf-hub:ORG/NAME, or hf-hub:ORG/NAME@REVISION for a branch, tag or commit id"
    if not text.startswith(HUB_PREFIX) or repo_id.count("/") != 1 or (at and not revision):
        raise HubError(f"{text!r} is not a Hub model name; {expected}")
    parts = revision.split("/")
    if revision and (any(part in ("", ".", "..") for part in parts) or not revision.isprintable() or "\\" in revision):
        # huggingface_hub keeps a branch or tag as a file named by it in the cache: no path may climb out
        raise HubError(f"{text!r}: revision {revision!r} is not a branch, tag or commit id; {expected}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubError(f"{text!r} is not a Hub model name ({str(error).splitlines()[0]}); {expected}") from error
    return HubName(repo_id, revision or None)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _fetch_hint(name: HubName, files: Sequence[str]) -> str:
    """The command that puts ``files`` of ``name`` into the cache where there is a network."""
    revision = f" --revision {name.revision}" if name.revision else ""
    return f"hf download {name.repo_id} {' '.join(files)}{revision}"


def _hub_call(name: HubName, files: Sequence[str], call: Callable[[], _Result]) -> _Result:
    """``call()``, a request about ``files`` of repo ``name``, with what ``huggingface_hub`` raises turned into a
    one-line HubError."""
    from huggingface_hub import errors

    revision = name.revision or "main"
    try:
        return call()
    except errors.GatedRepoError as error:
        raise HubError(
            f"{name}: a gated repo; accept its terms at {_endpoint()}/{name.repo_id} and log in (hf auth login, or "
            "set HF_TOKEN)"
        ) from error
    except errors.RepositoryNotFoundError as error:
        raise HubError(
            f"{name}: {_endpoint()} has no model repo {name.repo_id}, or it is private; check the name, or log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from error
    except errors.RevisionNotFoundError as error:
        raise HubError(
            f"{name}: {name.repo_id} has no revision {revision!r}; give a branch, tag or commit id that it has"
        ) from error
    except errors.RemoteEntryNotFoundError as error:
        raise HubError(f"{name}: {name.repo_id} has no {' or '.join(files)} at revision {revision}") from error
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as error:
        raise _not_cached(name, files, str(error).splitlines()[0]) from error
    except errors.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        login = (
            "; log in with a token that may write there (hf auth login, or set HF_TOKEN)"
            if status in (401, 403)
            else ""
        )
        raise HubError(f"{name}: {_endpoint()} answered HTTP {status} ({str(error).splitlines()[0]}){login}") from error
    except (errors.HTTPError, errors.XetDownloadError) as error:
        raise HubError(
            f"{name}: the transfer from {_endpoint()} failed ({error}); the same command retries it"
        ) from error
    except OSError as error:
        raise HubError(f"{name}: {error_line(error)}") from error


def _not_cached(name: HubName, files: Sequence[str], detail: str) -> HubError:
    """The error for ``files`` of ``name`` that are not in the cache and cannot be fetched now."""
    from huggingface_hub import constants

    reason = (
        "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else f"{_endpoint()} could not be reached ({detail})"
    )
    return HubError(
        f"{name}: {' and '.join(files)} not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {reason}; "
        f"fetch it where there is a network ({_fetch_hint(name, files)}) and copy the cache here, or unset "
        "HF_HUB_OFFLINE"
    )


def hub_file(name: HubName, filename: str, revision: str | None = None) -> Path:
    """``filename`` of repo ``name`` (at ``revision``, default the name's), from the Hugging Face cache or
    fetched into it."""
    from huggingface_hub import hf_hub_download

    return Path(
        _hub_call(name, [filename], lambda: hf_hub_download(name.repo_id, filename, revision=revision or name.revision))
    )


def hub_model_weights(value: str | os.PathLike) -> Path:
    """The weights file of the risam model repo ``value`` (``hf-hub:ORG/NAME[@REVISION]``) in the cache.

    ``config.json`` comes first: HubError if the repo is not a risam model (another library's, such as
    timm's SAM encoders, which are encoder files, not trained RISAM weights). The weights come from the
    same commit as that config.
    """
    name = parse_hub_name(value)
    config_path = hub_file(name, CONFIG_FILE)
    commit = _snapshot_commit(config_path) or name.revision
    try:
        config = read_json(config_path)
    except (UnicodeDecodeError, ValueError) as error:
        raise HubError(f"{name}: its {CONFIG_FILE} is not JSON ({error})") from error
    except RecursionError as error:
        raise HubError(f"{name}: its {CONFIG_FILE} is not JSON this reader reads (nested too deeply)") from error
    library = config.get("library_name") if isinstance(config, dict) else None
    if library != LIBRARY_NAME:
        raise HubError(
            f"{name}: not a risam model ({CONFIG_FILE} has library_name {library!r}, not {LIBRARY_NAME!r}); a risam "
            f"model repo is what risam export writes. Encoder files go to sam_checkpoint= or clip_checkpoint="
        )
    return hub_file(name, WEIGHTS_FILE, revision=commit)


def pinned_name(value: str | os.PathLike, path: str | os.PathLike) -> str:
    """The Hub name ``value`` pinned to the commit its file ``path`` (in the cache) came from, for records:
    ``hf-hub:ORG/NAME@COMMIT``; ``value`` itself when the cache layout does not show the commit."""
    name = parse_hub_name(value)
    commit = _snapshot_commit(path)
    return str(HubName(name.repo_id, commit)) if commit else str(name)


def _snapshot_commit(path: str | os.PathLike) -> str | None:
    """The commit a file of the Hugging Face cache came from: the name of its snapshot folder (None if the
    layout does not show one)."""
    folder = Path(path).parent.name
    return folder if _COMMIT_ID.fullmatch(folder) else None


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of the file at ``path``: what the Hub records for a file that is not in LFS."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def checked_hub_file(value: str | os.PathLike | HubName, candidates: Sequence[str]) -> tuple[Path, str]:
    """The first of ``candidates`` (file names, in order of preference) that repo ``value`` holds, in the cache,
    checked against the hash the Hub records for it; returns (path, "sha256:HEX" or "git-sha1:HEX").

    Online, the Hub's record (``paths-info``) says which file exists and its SHA-256 (an LFS file) or git
    object id; a file whose bytes differ is removed from the cache and refused. Offline, the cached file
    is checked against the SHA-256 that names its blob in the cache (what the Hub sent with it).
    """
    from huggingface_hub import HfApi, constants

    name = value if isinstance(value, HubName) else parse_hub_name(value)
    if constants.is_offline_mode():
        return _cached_candidate(name, candidates)
    infos = _hub_call(
        name, candidates, lambda: HfApi().get_paths_info(name.repo_id, list(candidates), revision=name.revision)
    )
    recorded = {info.path: info for info in infos if getattr(info, "size", None) is not None}
    chosen = next((file for file in candidates if file in recorded), None)
    if chosen is None:
        raise HubError(
            f"{name}: {name.repo_id} has none of {', '.join(candidates)} at revision {name.revision or 'main'}"
        )
    info = recorded[chosen]
    path = hub_file(name, chosen)
    if info.lfs is not None:
        expected, actual, kind = info.lfs.sha256, sha256_of(path), "sha256"
    else:
        expected, actual, kind = info.blob_id, git_blob_sha1(path), "git-sha1"
    if actual != expected:
        _remove_cached(path)
        raise HubError(
            f"{name}: {chosen} has {kind} {actual}, but the Hub records {expected}; it was removed from the cache, "
            "and the same command fetches it again"
        )
    return path, f"{kind}:{actual}"


def _cached_candidate(name: HubName, candidates: Sequence[str]) -> tuple[Path, str]:
    """Offline: the first of ``candidates`` in the cache, checked against the SHA-256 its blob is named by."""
    from huggingface_hub import try_to_load_from_cache

    for file in candidates:
        cached = try_to_load_from_cache(name.repo_id, file, revision=name.revision)
        if isinstance(cached, str):
            path = Path(cached)
            actual = sha256_of(path)
            blob = path.resolve().name
            if _SHA256.fullmatch(blob) and blob != actual:
                raise HubError(f"{name}: the cached {file} ({path}) has SHA-256 {actual}, not {blob}; delete it")
            return path, f"sha256:{actual}"
    raise _not_cached(name, candidates[:1], "offline")


def _remove_cached(path: Path) -> None:
    """Remove a file of the Hugging Face cache: its blob and the snapshot's link to it."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, message: str | None = None) -> str:
    """Upload the files of ``folder`` to the model repo ``repo_id`` (created if it does not exist, private
    if ``private``) in one commit; returns the commit's URL. The login is ``huggingface_hub``'s."""
    from huggingface_hub import CommitOperationAdd, HfApi

    name = parse_hub_name(HUB_PREFIX + repo_id)
    files = sorted(path for path in Path(folder).iterdir() if path.is_file())
    api = HfApi()
    operations = [CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path)) for path in files]
    names = [path.name for path in files]
    visibility = True if private else None  # None: the account's default, and an existing repo keeps its own
    _hub_call(name, names, lambda: api.create_repo(repo_id, repo_type="model", private=visibility, exist_ok=True))
    commit = _hub_call(
        name,
        names,
        lambda: api.create_commit(repo_id, operations, commit_message=message or f"Upload {', '.join(names)}"),
    )
    return str(commit.commit_url)
