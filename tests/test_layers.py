"""The layer rule of docs/architecture.md: every module imports only from its own or lower layers.

An AST walk sees every import, at module level, inside functions and under ``TYPE_CHECKING``, and
``importlib.import_module("...")`` calls with a literal name; a failure names the file, the line
and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import from its own layer and any layer listed before it.
PACKAGE_LAYERS: tuple[str, ...] = ("data_tools", "san", "baselines", "scripts")
SAN_LAYERS: tuple[tuple[str, ...], ...] = (
    ("san", "san.methods", "san.runtime"),
    ("san.models",),
    ("san.algorithms",),
    ("san.evaluation",),
    ("san.runs",),
    ("san.training",),
    ("san.inference",),
    ("san.benchmark",),
    ("san.studies",),
    ("san.cli", "san.api"),
)
PROJECT = set(PACKAGE_LAYERS)
# A package that re-exports a higher layer's names lazily (PEP 562 ``__getattr__``), and what it may name.
FACADES: dict[str, tuple[str, ...]] = {"san": ("san.api",)}


def module_name(path: Path, root: Path) -> str:
    """``san/runs/records.py`` -> ``san.runs.records`` (a package's ``__init__`` -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every project import in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (
        module_name(path, root).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path, root)
    )
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name.split(".")[0] in PROJECT]


def san_layer(module: str) -> int:
    """Index of the san layer a module belongs to (its longest matching prefix)."""
    best, index = -1, -1
    for layer, prefixes in enumerate(SAN_LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), layer
    return index


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when the import goes downward."""
    if imported in FACADES.get(importer, ()):
        return None
    top_from, top_to = importer.split(".")[0], imported.split(".")[0]
    if PACKAGE_LAYERS.index(top_to) > PACKAGE_LAYERS.index(top_from):
        return f"{top_from} sits below {top_to}"
    if top_from == top_to == "san":
        layer_from, layer_to = san_layer(importer), san_layer(imported)
        if layer_to > layer_from:
            return f"{SAN_LAYERS[layer_from][0]} sits below {SAN_LAYERS[layer_to][0]}"
    return None


def layer_violations(root: Path) -> list[str]:
    """Every upward import under ``root``, as ``file:line: importer imports imported (why)``."""
    problems = []
    for top in PACKAGE_LAYERS:
        for path in sorted((root / top).rglob("*.py")):
            importer = module_name(path, root)
            for line, imported in imported_modules(path, root):
                if why := violation(importer, imported):
                    problems.append(f"{path.relative_to(root)}:{line}: {importer} imports {imported} ({why})")
    return problems


def test_no_module_imports_from_a_higher_layer():
    problems = layer_violations(ROOT)
    assert not problems, "upward imports (see docs/architecture.md):\n" + "\n".join(problems)


def test_every_san_subpackage_has_a_layer():
    subpackages = [p.name for p in (ROOT / "san").iterdir() if (p / "__init__.py").is_file()]
    modules = [p.stem for p in (ROOT / "san").glob("*.py") if p.stem != "__init__"]
    for name in subpackages + modules:
        assert san_layer(f"san.{name}") >= 0, f"san.{name} is in no layer of SAN_LAYERS"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from san.cli.common import EXIT_OK\n", "san.evaluation sits below san.cli"),
        ("def f():\n    import baselines.cnn\n", "san sits below baselines"),
        ("import importlib\nimportlib.import_module('san.training.engine')\n", "below san.training"),
        ("from ..inference import predictors\n", "below san.inference"),
    ],
)
def test_a_planted_upward_import_is_reported_with_its_line(tmp_path, source, expected):
    package = tmp_path / "san" / "evaluation"
    package.mkdir(parents=True)
    for top in PACKAGE_LAYERS:
        (tmp_path / top).mkdir(exist_ok=True)
    (package / "planted.py").write_text(source, encoding="utf-8")
    problems = layer_violations(tmp_path)
    assert len(problems) == 1 and expected in problems[0] and "planted.py:" in problems[0]


def test_the_facade_names_only_its_api(tmp_path):
    package = tmp_path / "san"
    package.mkdir()
    for top in PACKAGE_LAYERS:
        (tmp_path / top).mkdir(exist_ok=True)
    (package / "__init__.py").write_text(
        "import importlib\nimportlib.import_module('san.api')\nimportlib.import_module('san.cli.train')\n",
        encoding="utf-8",
    )
    problems = layer_violations(tmp_path)
    assert len(problems) == 1 and "imports san.cli.train" in problems[0]


def test_downward_and_same_layer_imports_pass(tmp_path):
    package = tmp_path / "san" / "runs"
    package.mkdir(parents=True)
    for top in PACKAGE_LAYERS:
        (tmp_path / top).mkdir(exist_ok=True)
    (package / "fine.py").write_text(
        "from data_tools.atomic import atomic_write\nfrom san.evaluation import metrics\n"
        "from san.runs import records\nfrom san import methods\n",
        encoding="utf-8",
    )
    assert layer_violations(tmp_path) == []
