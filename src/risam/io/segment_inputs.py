"""What ``risam segment`` is asked to segment: image paths, folders and globs, or a JSONL manifest.

- A folder stands for the images under it, at any depth, with an image suffix (:data:`IMAGE_SUFFIXES`),
  in sorted order; a glob (``photos/*.jpg``, ``**`` for any depth) for the files it matches.
- A manifest holds one JSON object per line, ``{"image": PATH, "expressions": [TEXT, ...]}``; a
  relative ``PATH`` is relative to the manifest's folder, and ``expressions`` may be left out (the
  command line's then apply). Blank lines are skipped.

Each image gets a key: the folder under the output folder that its results go to, its path relative
to the folder, glob base or manifest it came from, without the suffix. Keys never leave the output
folder and never collide (a second ``a.png`` beside ``a.jpg`` is ``a_png``).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from risam.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GLOB_CHARACTERS = "*?["
MAX_MANIFEST_LINE = 1_000_000  # characters of one manifest line


class SegmentInputError(InputError):
    """An image argument or a manifest line cannot be used; the message names it and what would be right."""


@dataclass
class SegmentItem:
    """One image to segment: its ``path``, the ``key`` its results go under and its own ``expressions``
    (empty: the command line's)."""

    path: Path
    key: str
    expressions: list[str] = field(default_factory=list)


def is_image_argument(text: str) -> bool:
    """Whether the command-line argument ``text`` names images: an existing file or folder, or a glob
    that matches a file."""
    if os.path.exists(text):
        return True
    return any(character in text for character in GLOB_CHARACTERS) and any(
        os.path.isfile(match) for match in glob.iglob(text, recursive=True)
    )


def looks_like_image_path(text: str) -> bool:
    """Whether ``text`` ends in an image suffix (an image file the user meant, if it does not exist)."""
    return text.lower().endswith(IMAGE_SUFFIXES) and "\n" not in text


def expand_image_arguments(arguments: list[str]) -> list[SegmentItem]:
    """The images that file, folder and glob ``arguments`` name, in argument order (each folder's and
    glob's in sorted order), with unique keys; SegmentInputError for an argument that names none."""
    named: list[tuple[Path, PurePosixPath]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            named.append((path, PurePosixPath(path.name)))
        elif path.is_dir():
            found = sorted(
                candidate
                for candidate in path.rglob("*")
                if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file()
            )
            if not found:
                raise SegmentInputError(
                    f"{argument}: a folder with no images in it (files ending in {', '.join(IMAGE_SUFFIXES)})"
                )
            named.extend((candidate, PurePosixPath(candidate.relative_to(path).as_posix())) for candidate in found)
        else:
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True) if os.path.isfile(match))
            if not matches:
                raise SegmentInputError(f"{argument}: no such image file or folder, and no file matches it as a glob")
            base = _glob_base(argument)
            named.extend((match, _relative_key(match, base)) for match in matches)
    return _with_unique_keys([(path, relative, []) for path, relative in named])


def read_manifest(path: Path) -> list[SegmentItem]:
    """The items of the JSONL manifest ``path``; SegmentInputError naming ``path:LINE`` and the problem
    for a line that is not an object with a string ``image`` and a list of string ``expressions``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise SegmentInputError(f"{path}: not UTF-8 text (byte {error.start}); write the manifest as UTF-8") from error
    entries: list[tuple[Path, PurePosixPath, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if len(line) > MAX_MANIFEST_LINE:
            raise SegmentInputError(f"{where}: a line of {len(line)} characters; at most {MAX_MANIFEST_LINE}")
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise SegmentInputError(
                f'{where}: not a JSON object ({error}); expected {{"image": PATH, "expressions": [...]}}'
            ) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not entry["image"]:
            raise SegmentInputError(f"{where}: expected an object with a non-empty string 'image'")
        expressions = entry.get("expressions", [])
        if not isinstance(expressions, list) or not all(isinstance(item, str) for item in expressions):
            raise SegmentInputError(f"{where}: 'expressions' must be a list of strings, got {expressions!r:.80}")
        image = Path(entry["image"])
        resolved = image if image.is_absolute() else path.parent / image
        relative = PurePosixPath(image.as_posix()) if not image.is_absolute() else PurePosixPath(image.name)
        entries.append((resolved, relative, expressions))
    if not entries:
        raise SegmentInputError(f'{path}: no images; give one {{"image": PATH, "expressions": [...]}} per line')
    return _with_unique_keys(entries)


def _glob_base(pattern: str) -> Path:
    """The folder of ``pattern`` before its first part with a glob character."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if any(character in part for character in GLOB_CHARACTERS):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _relative_key(path: Path, base: Path) -> PurePosixPath:
    """``path`` relative to ``base`` (its file name if it is not under ``base``)."""
    try:
        return PurePosixPath(path.relative_to(base).as_posix())
    except ValueError:
        return PurePosixPath(path.name)


def _with_unique_keys(entries: list[tuple[Path, PurePosixPath, list[str]]]) -> list[SegmentItem]:
    """Items whose keys are the relative paths without suffix, kept inside the output folder (parts that
    are empty, ``.`` or ``..`` dropped) and made unique in order (the suffix kept, then a count)."""
    items, taken = [], set()
    for path, relative, expressions in entries:
        parts = [part for part in relative.parts if part not in ("", ".", "..", "/")] or ["image"]
        stem = PurePosixPath(*parts)
        candidates = [str(stem.with_suffix("")) or stem.name, str(stem.with_name(stem.name.replace(".", "_")))]
        key = candidates[0] if candidates[0] not in taken else candidates[1]
        count = 2
        while key in taken:
            key, count = f"{candidates[1]}_{count}", count + 1
        taken.add(key)
        items.append(SegmentItem(path, key, expressions))
    return items
