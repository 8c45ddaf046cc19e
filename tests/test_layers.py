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
