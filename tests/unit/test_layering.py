"""The arrows point one way: app -> agents -> tables -> cep.

A package may import the packages below it, never the ones above (docs/design.md).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ORDER = ["cep", "tables", "agents", "app"]


def _imports(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


@pytest.mark.parametrize("package", ORDER[:-1])
def test_a_package_never_imports_the_layers_above_it(package: str) -> None:
    above = set(ORDER[ORDER.index(package) + 1 :])
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    bad = [
        f"{f.relative_to(ROOT)} imports {name}"
        for f in files
        for name in _imports(f)
        if name.split(".")[0] in above
    ]
    assert bad == [], "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("from app.settings import Settings\nimport agents.detect\n")
    assert _imports(f) == ["app.settings", "agents.detect"]
