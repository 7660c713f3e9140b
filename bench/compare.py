"""Load another copy of the engine (``cep/``) next to the current one, for before/after runs.

Timings on a shared machine move by tens of percent between runs, so a change is measured by
driving the old and the new code in the same process, in alternating rounds. ``load_copy``
copies ``<dir>/cep`` to a temporary package with another name (its ``cep`` imports rewritten)
and imports it::

    old = load_copy("/tmp/before")          # /tmp/before/cep is the code before the change
    old.compile_pattern(...), old.rules.RuleRunner(...)
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

_IMPORT = re.compile(r"^(\s*)(from|import) cep\b", re.M)


def load_copy(src: str | Path, name: str = "cep_before") -> ModuleType:
    """Import ``<src>/cep`` as package ``name`` (with ``name.rules`` loaded too)."""
    pkg = Path(src) / "cep"
    if not (pkg / "__init__.py").is_file():
        raise SystemExit(f"{pkg} is not the engine package: pass the directory that holds cep/")
    tmp = Path(tempfile.mkdtemp(prefix="kairos-bench-"))
    dest = tmp / name
    shutil.copytree(pkg, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for f in dest.rglob("*.py"):
        text = _IMPORT.sub(rf"\1\2 {name}", f.read_text())
        f.write_text(text.replace('"cep.rules"', f'"{name}.rules"'))
    sys.path.insert(0, str(tmp))
    try:
        mod = importlib.import_module(name)
        importlib.import_module(f"{name}.rules")
    finally:
        sys.path.remove(str(tmp))
    return mod
