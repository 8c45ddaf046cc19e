"""Typed dataclasses from plain dicts (YAML, JSON), with errors that name the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from risam.errors import InputError, shown


class ConfigError(InputError):
    """A config value or key is wrong; the message names it and what would be right."""


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted = "a.b"``, creating missing sections.

    Which keys exist is checked later, by :func:`dataclass_from_dict`.
    """
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted!r}: {part!r} is a value, not a section")
    node[leaf] = value


def dataclass_from_dict(cls: type, data: Any, source: str = "config", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, checking every key and type.

    Unknown keys, missing sections and values of the wrong type raise ConfigError naming
    ``source`` (a file, or "config") and the dotted key. Lists become tuples where the field
    is a tuple; ints are accepted for floats, and so are numeric strings (YAML reads ``1e-4``
    as a string).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known, key=str)  # YAML keys may be numbers, booleans or None
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {[prefix + str(k) for k in unknown]}; known here: {sorted(known)}")
    required = [f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{source}: missing key(s) {[prefix + name for name in missing]} in {prefix.rstrip('.')}")
    return cls(**{name: _value(hints[name], value, prefix + name, source) for name, value in data.items()})


def _value(hint: Any, value: Any, key: str, source: str) -> Any:
    """``value`` as type ``hint``, or ConfigError naming ``key``."""
    if dataclasses.is_dataclass(hint):
        if isinstance(value, str) and hasattr(hint, "from_name"):  # a bare name for a section that has one
            return hint.from_name(value)
        return dataclass_from_dict(hint, value, source, prefix=key + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, key, source)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key}={shown(value)}; expected one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {shown(value)}")
        items = [_value(args[0], item, f"{key}[{i}]", source) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {shown(value)}")
        return dict(value)
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: {key} must be a number, got {shown(value)}")
    names = {bool: "true or false", int: "an integer", str: "a string"}
    if hint not in names:
        raise ConfigError(f"{source}: {key} has an unsupported type {hint!r}")
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be {names[hint]}, got {shown(value)}")
    return value


def dotted_leaves(cls: type, dotted: str, value: Any) -> list[tuple[str, Any]]:
    """``value`` at ``dotted`` as (dotted key, value) pairs down to the fields that are not sections of ``cls``
    (a nested dataclass config): a mapping for a section is spread over its keys."""
    section: Any = cls
    for part in dotted.split("."):
        hints = typing.get_type_hints(section) if dataclasses.is_dataclass(section) else {}
        section = hints.get(part)
    if isinstance(value, Mapping) and dataclasses.is_dataclass(section):
        return [pair for key, item in value.items() for pair in dotted_leaves(cls, f"{dotted}.{key}", item)]
    return [(dotted, value)]
