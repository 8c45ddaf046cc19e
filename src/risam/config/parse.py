"""Typed dataclasses from plain dicts (YAML, JSON), with errors that name the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from risam.errors import InputError


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
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {[prefix + k for k in unknown]}; known here: {sorted(known)}")
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
            raise ConfigError(f"{source}: {key}={value!r}; expected one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        items = [_value(args[0], item, f"{key}[{i}]", source) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
    names = {bool: "true or false", int: "an integer", str: "a string"}
    if hint not in names:
        raise ConfigError(f"{source}: {key} has an unsupported type {hint!r}")
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be {names[hint]}, got {value!r}")
    return value
