"""The architecture as a rule: every import goes down the layers of docs/architecture.md."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "risam"

# Lowest first. A module may import from its own unit and from units of lower layers only.
LAYERS = [
    {"errors", "version"},
    {"config"},
    {"io"},
    {"data", "precision", "cpu_memory"},
    {"modeling", "evaluation"},
    {"registry"},
    {"engine", "predictor"},
    {"drawing"},
    {"explain", "info", "pretrain", "quickstart", "ablation"},
    {"demo"},
    {"cli", "risam"},
]
LAYER = {unit: index for index, units in enumerate(LAYERS) for unit in units}
MAX_LINES = 400


def _unit(module: str) -> str:
    """``risam.engine.trainer`` -> ``engine``; ``risam`` (the package itself) -> ``risam``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _modules() -> list[tuple[Path, str]]:
    modules = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = ".".join(("risam", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
        modules.append((path, name))
    return modules


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [name for name in names if name == "risam" or name.startswith("risam.")]


@pytest.mark.parametrize(("path", "module"), _modules(), ids=lambda value: str(value))
def test_imports_go_down_the_layers(path, module):
    unit = _unit(module)
    assert unit in LAYER, f"{module}: place the unit {unit!r} in a layer of LAYERS and of docs/architecture.md"
    upward = [name for name in _imports(path) if _unit(name) != unit and LAYER[_unit(name)] >= LAYER[unit]]
    assert not upward, f"{module} (layer {LAYER[unit]}) imports from its own layer or above: {upward}"


def test_every_source_file_is_short():
    lengths = {str(path.relative_to(SOURCE)): len(path.read_text().splitlines()) for path, _ in _modules()}
    too_long = {name: count for name, count in lengths.items() if count >= MAX_LINES}
    assert not too_long, f"files of {MAX_LINES} lines or more: {too_long}"


# Functions that open a file, by the name they are imported from.
_OPENING_FUNCTIONS = {
    "open",
    "io.open",
    "os.open",
    "os.fdopen",
    "os.replace",
    "os.rename",
    "PIL.Image.open",
    "torch.load",
    "torch.save",
    "numpy.load",
    "safetensors.safe_open",
    "safetensors.torch.load_file",
    "safetensors.torch.save_file",
    "safetensors.numpy.load_file",
    "safetensors.numpy.save_file",
    "zipfile.ZipFile",
    "tarfile.open",
    "shutil.copyfile",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copytree",
    "shutil.move",
    "json.load",
    "json.dump",
    "tempfile.NamedTemporaryFile",
    "tempfile.TemporaryFile",
    "tempfile.mkstemp",
}
# Methods that open a file whatever object they are called on (``Path.read_text``, ``Figure.savefig``).
_OPENING_METHODS = {
    "open",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "savefig",
    "print_png",
    "print_figure",
}
# YAML readers and writers, which open nothing when given text but read or write a stream they are handed.
_YAML_STREAM_READERS = {"yaml.safe_load", "yaml.load", "yaml.full_load", "yaml.unsafe_load"}
_YAML_STREAM_WRITERS = {"yaml.safe_dump", "yaml.dump"}


def _import_names(tree: ast.Module) -> dict[str, str]:
    """Each name the module's imports bind (anywhere in it), mapped to what it names: ``np`` -> ``numpy``,
    ``Image`` -> ``PIL.Image``, ``load_file`` -> ``safetensors.torch.load_file``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                names[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """``Image.open`` -> ``PIL.Image.open`` for a chain of attributes on a name; None for other callees."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([names.get(node.id, node.id), *reversed(attributes)])


def _is_stream(node: ast.expr, handles: set[str]) -> bool:
    """Whether ``node`` is a file object: a name bound by ``with ... as name`` or a call of ``open``."""
    if isinstance(node, ast.Name):
        return node.id in handles
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "open")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "open")
    )


def _opening_call(call: ast.Call, names: dict[str, str], handles: set[str]) -> str | None:
    """What ``call`` opens a file with, or None when it opens none."""
    name = _dotted(call.func, names)
    if name in _OPENING_FUNCTIONS:
        return name
    if name in _YAML_STREAM_READERS and call.args and _is_stream(call.args[0], handles):
        return f"{name} of a stream"
    if name in _YAML_STREAM_WRITERS and (len(call.args) > 1 or any(k.arg == "stream" for k in call.keywords)):
        return f"{name} to a stream"
    if not isinstance(call.func, ast.Attribute):
        return None
    if call.func.attr in _OPENING_METHODS:
        return f".{call.func.attr}()"
    # PIL's Image.save(fp, ...) names the file; our own save() methods (Trainer.save) take no argument.
    if call.func.attr == "save" and (call.args or any(k.arg == "fp" for k in call.keywords)):
        return ".save(file)"
    return None


def _file_openings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = _import_names(tree)
    handles = {
        item.optional_vars.id
        for node in ast.walk(tree)
        if isinstance(node, ast.With | ast.AsyncWith)
        for item in node.items
        if isinstance(item.optional_vars, ast.Name)
    }
    where = path.relative_to(SOURCE)
    return [
        f"{where}:{node.lineno}: {opening}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (opening := _opening_call(node, names, handles))
    ]


def test_only_io_opens_files():
    openings = [opening for path, module in _modules() if _unit(module) != "io" for opening in _file_openings(path)]
    assert not openings, f"{len(openings)} calls open a file outside risam.io; call a function of risam.io:\n" + (
        "\n".join(sorted(openings))
    )
