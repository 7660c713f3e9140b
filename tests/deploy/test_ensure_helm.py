"""scripts/ensure-helm: the pinned Helm, or a failure that says why."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.deploy.helm import ENSURE_HELM, Helm, HelmError, ensure_helm

pytestmark = pytest.mark.timeout(2400)  # the first test may build Helm (cold: minutes)


def pinned_version() -> str:
    m = re.search(
        r'HELM_VERSION="\$\{KAIROS_HELM_VERSION:-(v3\.\d+\.\d+)\}"', ENSURE_HELM.read_text()
    )
    assert m, "scripts/ensure-helm must pin a Helm v3 release"
    return m[1]


def test_the_binary_is_the_pinned_release(helm: Helm) -> None:
    version = helm.run("version", "--template", "{{.Version}}").stdout.strip()
    assert version == pinned_version()


def test_a_missing_toolchain_fails_with_the_reason(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": "/usr/bin:/bin",  # no helm, no go
        "KAIROS_CACHE_DIR": str(tmp_path),
        "GO": str(tmp_path / "no-go"),
    }
    with pytest.raises(HelmError, match=r"ensure-helm: GO=.*no-go is not an executable"):
        ensure_helm(env=env)
    assert not (tmp_path / "bin").exists() or not any((tmp_path / "bin").glob("helm-*"))
