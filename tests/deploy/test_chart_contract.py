"""The chart and the image speak the app's language: the environment variables they set are
the ones app.settings reads, with values it accepts; the ports and probe paths are the ones
the web view serves."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.buildfiles import dockerfile_stages, env_values
from tests.deploy.helm import CHART, CI_VALUES, NAMESPACE, RELEASE, Manifests

pytestmark = pytest.mark.timeout(2400)  # the first test may build Helm (cold: minutes)

ROOT = Path(__file__).resolve().parents[2]
VALUE_SETS = [None, *CI_VALUES]
VALUE_IDS = ["defaults", *(p.stem for p in CI_VALUES)]

#: Set by the chart for Kubernetes' own $(VAR) expansion, not read by the app.
DOWNWARD_API_ONLY = {"POD_NAME"}

#: The settings the chart must be able to set (each in at least one CI value set).
CHART_SETS = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAIROS_APP_ID",
    "KAIROS_STORE",
    "KAIROS_DATA_DIR",
    "KAIROS_PARTITIONS",
    "KAIROS_REPLICATION_FACTOR",
    "KAIROS_STANDBY_REPLICAS",
    "KAIROS_PROCESSING_GUARANTEE",
    "KAIROS_WEB_PORT",
    "KAIROS_WEB_HOST",
    "KAIROS_WEB_CANONICAL_URL",
    "KAIROS_ADMIN_TOKEN",
    "KAIROS_READ_TOKEN",
    "KAIROS_RULES_DIR",
    "KAIROS_LOG_LEVEL",
    "KAIROS_LOG_FORMAT",
}


def _files(value_file: Path | None) -> tuple[Path, ...]:
    return () if value_file is None else (value_file,)


def app_env_names() -> set[str]:
    from app.settings import ENV_SETTINGS

    return {name for name, _default, _doc in ENV_SETTINGS}


def app_default(env_name: str) -> Any:
    from app.settings import ENV_SETTINGS

    return next(default for name, default, _doc in ENV_SETTINGS if name == env_name)


def served_routes() -> set[tuple[str, str]]:
    from app.web.server import ROUTES

    return {(method, path) for method, path, _handler in ROUTES}


def process_env(m: Manifests, pod_index: int = 0) -> dict[str, str]:
    """The worker's environment as Kubernetes would build it for pod ``pod_index``.

    Values from the chart's own Secrets are decoded; values from Secrets the chart does not
    create (existingSecret) get a placeholder, as the cluster would supply them.
    """
    secrets = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in m.of_kind("Secret")
    }
    pod = f"{m.statefulset['metadata']['name']}-{pod_index}"
    out: dict[str, str] = {}
    for name, entry in m.env().items():
        if "value" in entry:
            value = re.sub(r"\$\((\w+)\)", lambda g: out.get(g[1], g[0]), entry["value"])
        elif "fieldRef" in entry.get("valueFrom", {}):
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            value = {"metadata.name": pod, "metadata.namespace": NAMESPACE}[path]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["name"] in secrets:
                value = secrets[ref["name"]][ref["key"]]
            else:
                value = f"external-{ref['name']}-{ref['key']}"
        out[name] = value
    return out


def test_chart_sets_only_environment_variables_the_app_reads(render) -> None:
    known = app_env_names()
    set_somewhere: set[str] = set()
    for value_file in VALUE_SETS:
        names = set(render(*_files(value_file)).env())
        unknown = names - known - DOWNWARD_API_ONLY
        assert not unknown, f"{value_file}: the app reads no {sorted(unknown)}"
        set_somewhere |= names
    assert known >= CHART_SETS, f"app.settings lacks {sorted(CHART_SETS - known)}"
    assert set_somewhere >= CHART_SETS, f"no CI value set sets {sorted(CHART_SETS - set_somewhere)}"


@pytest.mark.parametrize("value_file", VALUE_SETS, ids=VALUE_IDS)
def test_app_accepts_the_environment_the_chart_builds(render, value_file: Path | None) -> None:
    from app.settings import Settings

    m = render(*_files(value_file))
    env = process_env(m, pod_index=2)
    settings = Settings.from_env(env)
    container = m.container
    port = container["ports"][0]["containerPort"]
    assert settings.web_port == port
    headless = m.one("Service", "peers")["metadata"]["name"]
    pod = f"{m.statefulset['metadata']['name']}-2"
    assert settings.canonical_url == f"http://{pod}.{headless}.{NAMESPACE}.svc.cluster.local:{port}"
    assert settings.web_host == "0.0.0.0"
    mounts = {v["mountPath"] for v in container["volumeMounts"]}
    assert settings.data_dir in mounts
    persistent = "volumeClaimTemplates" in m.statefulset["spec"]
    assert settings.store == ("rocksdb://" if persistent else "memory://")
    if settings.rules_dir:
        assert settings.rules_dir in mounts


def test_web_port_default_is_the_apps() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    default = app_default("KAIROS_WEB_PORT")
    assert values["kairos"]["webPort"] == default
    assert values["service"]["port"] == default
    final = dockerfile_stages((ROOT / "Dockerfile").read_text())[1][-1]
    assert env_values(final)["KAIROS_WEB_PORT"] == str(default)
    assert final.last("EXPOSE").args.split() == [str(default)]


def test_probe_and_metrics_paths_are_served(render) -> None:
    served = served_routes()
    c = render(CHART / "ci" / "values-servicemonitor.yaml").container
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert ("GET", c[probe]["httpGet"]["path"]) in served, probe
    sm = render(CHART / "ci" / "values-servicemonitor.yaml").one("ServiceMonitor")
    assert ("GET", sm["spec"]["endpoints"][0]["path"]) in served
    healthcheck = dockerfile_stages((ROOT / "Dockerfile").read_text())[1][-1].last("HEALTHCHECK")
    paths = set(re.findall(r"(/[a-z]+)'", healthcheck.args))
    assert paths and {("GET", p) for p in paths} <= served


@pytest.mark.parametrize(
    ("value_path", "env_name"),
    [
        (("kafka", "securityProtocol"), "KAFKA_SECURITY_PROTOCOL"),
        (("kafka", "sasl", "mechanism"), "KAFKA_SASL_MECHANISM"),
        (("kairos", "processingGuarantee"), "KAIROS_PROCESSING_GUARANTEE"),
        (("kairos", "logLevel"), "KAIROS_LOG_LEVEL"),
        (("kairos", "logFormat"), "KAIROS_LOG_FORMAT"),
    ],
)
def test_every_choice_the_schema_allows_the_app_accepts(
    value_path: tuple[str, ...], env_name: str
) -> None:
    from app.settings import Settings, SettingsError

    node = json.loads((CHART / "values.schema.json").read_text())
    for key in value_path:
        node = node["properties"][key]
    base = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "u",
        "KAFKA_SASL_PASSWORD": "p",
    }
    for choice in node["enum"]:
        Settings.from_env({**base, env_name: choice})
    with pytest.raises(SettingsError):
        Settings.from_env({**base, env_name: "NOT-A-CHOICE"})


def test_release_name_is_the_one_the_checks_assume(render) -> None:
    assert render().statefulset["metadata"]["name"] == f"{RELEASE}-kairos"
