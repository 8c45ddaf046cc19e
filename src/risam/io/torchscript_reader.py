"""The parameters and buffers of a TorchScript archive, read without running the archive.

OpenAI's CLIP ``.pt`` files are TorchScript archives: a zip with one root folder (any name)
holding ``data.pkl`` (the module tree, pickled), ``data/<key>`` (the raw bytes of each tensor
storage), ``code/`` (the TorchScript source of every class: ``__torch__.a.b.C`` is class ``C``
of ``code/__torch__/a/b.py``, mangled names such as ``__torch__.a.___torch_mangle_3.C``
included), ``constants.pkl`` and ``byteorder``. ``torch.jit.load`` compiles
that source and runs the ``__setstate__`` methods it defines, so a crafted file runs its code
(which can write files) as soon as it is loaded.

Here nothing of the file runs. ``data.pkl`` is unpickled with a closed set of globals: every
TorchScript class becomes an inert record of its state, tensors are rebuilt from their storage
bytes, and everything else is refused. Which attributes are parameters and buffers is read from
the ``__parameters__`` and ``__buffers__`` lists of the class definitions in ``code/``, parsed
with :mod:`ast`, never compiled. A class that defines ``__setstate__`` is refused too: its state
is whatever that code makes of the pickled value.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from risam.io.pickle_scan import pickle_opcodes_problem
from risam.io.state_dict import CheckpointError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
# What TorchScript's pickler writes besides classes and tensors, as inert values.
_INERT_GLOBALS = {
    ("collections", "OrderedDict"): dict,
    ("torch.jit._pickle", "build_intlist"): list,
    ("torch.jit._pickle", "build_tensorlist"): list,
    ("torch.jit._pickle", "build_doublelist"): list,
    ("torch.jit._pickle", "build_boollist"): list,
    ("torch.jit._pickle", "restore_type_tag"): lambda value, type_name: value,
}
_MAX_METADATA_BYTES = 1 << 28  # data.pkl and each code file; storages are checked against their numel


class TorchScriptCodeRefused(CheckpointError):
    """The archive needs code to be read (a global outside tensors and containers, or a ``__setstate__``)."""


class _ClassInfo(NamedTuple):
    is_module: bool
    parameters: frozenset[str]
    buffers: frozenset[str]


class _Record:
    """An instance of a TorchScript class, inert: BUILD hands it its state, which is only kept."""

    info: ClassVar[_ClassInfo]
    state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _Storage(NamedTuple):
    data: Tensor  # 1-D, the whole storage


class _TensorRef(NamedTuple):
    """A rebuilt tensor; the wrapper keeps BUILD away from ``Tensor.__setstate__`` (which calls ``set_``)."""

    tensor: Tensor


def read_torchscript_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The parameters and buffers of the TorchScript archive at ``path``, as CPU tensors.

    The keys, values, dtypes and strides are those of ``torch.jit.load(path).state_dict()``
    (dotted names; buffers and parameters only, not plain tensor attributes), but no code of
    the file runs and torch.jit is not used: ``data.pkl`` may refer only to TorchScript classes
    (``__torch__.*``), tensors and TorchScript's containers. Anything else, or a class that
    defines ``__setstate__``, raises :class:`TorchScriptCodeRefused`; a corrupt or truncated
    archive, a storage whose size does not match, or a view outside its storage raises
    CheckpointError. Both name ``path``. A missing file is a FileNotFoundError.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return _ArchiveReader(path, archive).state_dict()
    except (CheckpointError, FileNotFoundError, PermissionError):
        raise
    except Exception as err:  # a corrupt archive fails in zipfile, pickle or torch in many ways
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(
            f"{path} could not be read as a TorchScript archive ({type(err).__name__}: {detail})"
        ) from err


class _ArchiveReader(pickle.Unpickler):
    """Unpickles ``<root>/data.pkl`` of one archive into records and tensors, then flattens them."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        names = set(archive.namelist())
        roots = [
            name.removesuffix("/data.pkl") for name in names if name.endswith("/data.pkl") and name.count("/") == 1
        ]
        if len(roots) != 1:
            raise CheckpointError(f"{path} is not a TorchScript archive: it has no single <root>/data.pkl")
        self._path, self._archive, self._root = path, archive, roots[0]
        byteorder = self._read("byteorder", 16).decode() if f"{self._root}/byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: byteorder is {byteorder!r}, not 'little' or 'big'")
        self._swap_bytes = byteorder != sys.byteorder
        self._storages: dict[str, _Storage] = {}
        self._classes: dict[tuple[str, str], type[_Record]] = {}
        self._code: dict[str, ast.Module] = {}
        data = self._read("data.pkl", _MAX_METADATA_BYTES)
        problem = pickle_opcodes_problem(io.BytesIO(data))
        if problem:
            raise CheckpointError(f"{path}: data.pkl is not a pickle this reader reads ({problem})")
        super().__init__(io.BytesIO(data))

    def _read(self, name: str, expected_size: int, exact: bool = False) -> bytes:
        info = self._archive.getinfo(f"{self._root}/{name}")
        if info.file_size > expected_size or (exact and info.file_size != expected_size):
            raise CheckpointError(
                f"{self._path}: {name} holds {info.file_size} bytes, "
                f"{'not' if exact else 'more than'} the {expected_size} expected"
            )
        return self._archive.read(info)

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return self._record_class(module, name)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) in _INERT_GLOBALS:
            return _INERT_GLOBALS[module, name]
        raise TorchScriptCodeRefused(
            f"{self._path}: data.pkl refers to {module}.{name}, which is not a tensor, a container or a "
            "TorchScript class; refused, nothing in the file was run"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: data.pkl has an unknown persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid  # every storage is read onto the CPU
        if not (isinstance(dtype, torch.dtype) and isinstance(key, str) and isinstance(numel, int) and numel >= 0):
            raise CheckpointError(f"{self._path}: data.pkl has a malformed storage id {pid!r:.80}")
        if key not in self._storages:
            raw = self._read(f"data/{key}", numel * dtype.itemsize, exact=True)
            data = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            if self._swap_bytes and dtype.itemsize > 1:
                data = data.view(-1, dtype.itemsize).flip(1).reshape(-1)
            self._storages[key] = _Storage(data.view(dtype))
        storage = self._storages[key]
        if storage.data.dtype != dtype:
            raise CheckpointError(f"{self._path}: storage data/{key} is read as both {storage.data.dtype} and {dtype}")
        return storage

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
        """``torch._utils._rebuild_tensor_v2``: a view of ``storage``, checked to lie inside it."""
        shaped = isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
        numbers = (offset, *size, *stride) if shaped else (None,)
        valid = isinstance(storage, _Storage) and all(isinstance(n, int) and n >= 0 for n in numbers)
        if valid and all(size):
            valid = offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) < len(storage.data)
        if not valid:
            raise CheckpointError(f"{self._path}: data.pkl has a tensor view outside its storage")
        return _TensorRef(storage.data.as_strided(size, stride, offset))

    def _record_class(self, module: str, name: str) -> type[_Record]:
        """An inert class for the TorchScript class ``module.name``, with what its code declares."""
        if (module, name) not in self._classes:
            code_file = "code/" + module.replace(".", "/") + ".py"
            if code_file not in self._code:
                source = self._read(code_file, _MAX_METADATA_BYTES).decode()
                self._code[code_file] = ast.parse(source, filename=code_file)
            definitions = [
                node for node in self._code[code_file].body if isinstance(node, ast.ClassDef) and node.name == name
            ]
            if len(definitions) != 1:
                raise CheckpointError(f"{self._path}: {code_file} has {len(definitions)} definitions of class {name}")
            body = definitions[0].body
            if any(isinstance(node, ast.FunctionDef) and node.name == "__setstate__" for node in body):
                raise TorchScriptCodeRefused(
                    f"{self._path}: TorchScript class {module}.{name} defines __setstate__, code that "
                    "torch.jit.load would run to set its state; refused, nothing in the file was run"
                )
            info = _ClassInfo(
                is_module=any(isinstance(base, ast.Name) and base.id == "Module" for base in definitions[0].bases),
                parameters=_declared_names(body, "__parameters__"),
                buffers=_declared_names(body, "__buffers__"),
            )
            self._classes[module, name] = type(name, (_Record,), {"info": info, "__module__": module})
        return self._classes[module, name]

    def state_dict(self) -> dict[str, Tensor]:
        root = self.load()
        if not (isinstance(root, _Record) and root.info.is_module):
            raise CheckpointError(f"{self._path}: data.pkl holds a {type(root).__name__}, not a TorchScript module")
        state_dict: dict[str, Tensor] = {}
        self._flatten(root, "", state_dict, ())
        return state_dict

    def _flatten(self, module: _Record, prefix: str, out: dict[str, Tensor], ancestors: tuple[int, ...]) -> None:
        """Add the parameters, then the buffers, then the submodules' entries, in slot order, as nn.Module does."""
        if not isinstance(module.state, dict) or id(module) in ancestors:
            raise CheckpointError(f"{self._path}: module {prefix or '<root>'} has no attribute dict or contains itself")
        for declared in (module.info.parameters, module.info.buffers):
            for name, value in module.state.items():
                if name in declared and value is not None:
                    if not isinstance(value, _TensorRef):
                        raise CheckpointError(f"{self._path}: {prefix}{name} is declared a tensor but is not one")
                    out[prefix + name] = value.tensor
        for name, value in module.state.items():
            if isinstance(value, _Record) and value.info.is_module:
                self._flatten(value, f"{prefix}{name}.", out, (*ancestors, id(module)))


def _rebuild_parameter(data: Any, *_: Any) -> _TensorRef:
    if not isinstance(data, _TensorRef):
        raise TypeError(f"_rebuild_parameter got a {type(data).__name__}, not a tensor")
    return data


def _declared_names(body: list[ast.stmt], attribute: str) -> frozenset[str]:
    """The strings of ``attribute = ["a", "b", ]`` in a class body (TorchScript's module declarations)."""
    for node in body:
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == [attribute]:
            names = ast.literal_eval(node.value)
            if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
                raise ValueError(f"{attribute} is not a list of names")
            return frozenset(names)
    return frozenset()
