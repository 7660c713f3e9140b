"""cep/ stays a pure library: no runtime imports, a small sorted public surface."""

from __future__ import annotations

import ast
import pathlib

import cep

CEP = pathlib.Path(cep.__file__).parent
FORBIDDEN = {"faust", "aiokafka", "aiohttp", "app", "agents", "tables", "mode", "kafka"}


def test_cep_imports_nothing_from_the_runtime():
    files = sorted(CEP.rglob("*.py"))
    assert any(f.parent.name == "rules" for f in files) or not (CEP / "rules").exists()
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            bad += [
                f"{f.relative_to(CEP.parent)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN
            ]
    assert bad == []


def test_public_names_are_sorted_and_exported():
    # isort-style order (as ruff's RUF022 keeps it): CONSTANTS, then Classes, then functions
    def order(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert cep.__all__ == sorted(cep.__all__, key=order)
    for name in cep.__all__:
        assert hasattr(cep, name), name
    assert {
        "Pattern",
        "compile_pattern",
        "SkipStrategy",
        "MalformedPatternError",
        "PatternSet",
        "EventTimeProcessor",
    } <= set(cep.__all__)
