"""Fixtures of the deployment checks: the pinned Helm binary and rendered manifests.

Helm is built once per machine by scripts/ensure-helm (``go install``, a few minutes cold,
cached in ~/.cache/kairos/bin afterwards). When it cannot be built the tests fail with the
reason; they never skip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.helm import Helm, HelmError, Manifests, ensure_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = ensure_helm()
    except HelmError as exc:
        pytest.fail(f"Helm is needed for the chart checks and could not be built: {exc}")
    return Helm(binary=binary, home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., Manifests]:
    """``render(*value_files)``: manifests for those values, rendered once per session."""
    cache: dict[tuple[Path, ...], Manifests] = {}

    def _render(*value_files: Path) -> Manifests:
        if value_files not in cache:
            cache[value_files] = helm.render(*value_files)
        return cache[value_files]

    return _render
