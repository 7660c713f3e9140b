"""Starts :mod:`bench.looplag` in a process whose environment sets ``KAIROS_LOOP_STATS``
(put this directory on ``PYTHONPATH``). Loaded from this file's tree, so a worker running
another source tree is measured the same way."""

import importlib.util
import os
import sys
from pathlib import Path

_path = os.environ.get("KAIROS_LOOP_STATS")
if _path:
    _spec = importlib.util.spec_from_file_location(
        "kairos_looplag", Path(__file__).resolve().parents[1] / "looplag.py"
    )
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["kairos_looplag"] = _module
    _spec.loader.exec_module(_module)
    _module.install(_path)
