"""What the package promises its users: declared dependencies, type hints, public names."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.resources
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SRC = Path(__file__).resolve().parent.parent / "src" / "chatwire"
MODULES = sorted(
    ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in SRC.rglob("*.py")
)


def test_type_hints_ship_with_the_package() -> None:
    assert (importlib.resources.files("chatwire") / "py.typed").is_file()


def _imported_top_level(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_imported_distribution_is_declared() -> None:
    imported = set().union(*(_imported_top_level(path) for path in SRC.rglob("*.py")))
    third_party = imported - set(sys.stdlib_module_names) - {"chatwire"}
    providing = importlib.metadata.packages_distributions()
    requirements = importlib.metadata.requires("chatwire") or []
    declared = {canonicalize_name(Requirement(line).name) for line in requirements}
    for module in sorted(third_party):
        distributions = {canonicalize_name(name) for name in providing.get(module, [])}
        assert distributions, f"{module} is imported but no installed distribution provides it"
        assert distributions & declared, f"{module} ({distributions}) is not a declared dependency"


@pytest.mark.parametrize("name", MODULES)
def test_each_modules_all_names_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [export for export in exported if not hasattr(module, export)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"
