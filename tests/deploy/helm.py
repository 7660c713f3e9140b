"""Run the pinned Helm binary on the chart and parse what it renders."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kairos"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
ENSURE_HELM = ROOT / "scripts" / "ensure-helm"

#: Kubernetes versions the manifests are validated against: the oldest the chart declares
#: (Chart.yaml kubeVersion) and the one the pinned Helm assumes by default.
KUBE_VERSIONS = ("1.29.0", "1.36.0")

RELEASE = "ci"
NAMESPACE = "kairos"

# Helm must not read or write the user's Helm configuration or reach a cluster.
_HELM_ENV_KEYS = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")


class HelmError(AssertionError):
    """helm exited non-zero; the message holds its stderr."""


def ensure_helm(timeout: float = 1800, env: dict[str, str] | None = None) -> Path:
    """Path of the pinned Helm binary, built on first use by scripts/ensure-helm."""
    try:
        proc = subprocess.run(
            [str(ENSURE_HELM)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise HelmError(
            f"scripts/ensure-helm did not finish in {timeout:.0f}s; run it by hand to see why"
        ) from None
    if proc.returncode != 0:
        raise HelmError(
            f"scripts/ensure-helm failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        for key in _HELM_ENV_KEYS:
            env[key] = str(self.home / key.lower())
        env["KUBECONFIG"] = str(self.home / "no-kubeconfig")
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=120
        )
        if check and proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc

    def lint(self, *value_files: Path, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        args = ["lint", "--strict", str(chart)]
        for f in value_files:
            args += ["-f", str(f)]
        return self.run(*args, check=False)

    def template(
        self,
        *value_files: Path,
        sets: tuple[str, ...] = (),
        kube_version: str = KUBE_VERSIONS[-1],
        chart: Path = CHART,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = [
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
        ]
        for f in value_files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        return self.run(*args, check=check)

    def render(self, *value_files: Path, sets: tuple[str, ...] = (), **kw: Any) -> Manifests:
        return Manifests.parse(self.template(*value_files, sets=sets, **kw).stdout)


@dataclass(frozen=True)
class Manifests:
    docs: tuple[dict[str, Any], ...]

    @classmethod
    def parse(cls, text: str) -> Manifests:
        return cls(tuple(d for d in yaml.safe_load_all(text) if d))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.of_kind(kind)
            if component is None
            or d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} ({component}), got {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    @property
    def statefulset(self) -> dict[str, Any]:
        return self.one("StatefulSet")

    @property
    def pod(self) -> dict[str, Any]:
        return self.statefulset["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert [c["name"] for c in containers] == ["kairos"]
        return containers[0]

    def env(self) -> dict[str, dict[str, Any]]:
        """The worker container's env entries by name (each the whole EnvVar)."""
        entries = self.container.get("env", [])
        names = [e["name"] for e in entries]
        assert len(names) == len(set(names)), f"duplicate env names: {names}"
        return {e["name"]: e for e in entries}
