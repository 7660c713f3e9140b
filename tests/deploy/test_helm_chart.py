"""The Helm chart: lint, render and Kubernetes-schema validation with every CI value set,
plus the behaviours the chart promises (persistence, identities, probes, hardening)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy import kubeschema
from tests.deploy.helm import CHART, CI_VALUES, KUBE_VERSIONS, NAMESPACE, Helm, Manifests

pytestmark = pytest.mark.timeout(2400)  # the first test may build Helm (cold: minutes)

VALUE_SETS = [None, *CI_VALUES]
VALUE_IDS = ["defaults", *(p.stem for p in CI_VALUES)]
BY_NAME = {p.stem: p for p in CI_VALUES}

# kubernetes-validate ships the core API only; the ServiceMonitor (a Prometheus Operator
# CRD) is checked against the fields this chart uses, from the operator's API reference.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "honorLabels": {"type": "boolean"},
                            "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^([0-9]+(ms|s|m|h))+$",
                            },
                        },
                    },
                },
            },
        },
    },
}


def _files(value_file: Path | None) -> tuple[Path, ...]:
    return () if value_file is None else (value_file,)


def k8s_errors(doc: dict[str, Any], version: str) -> list[str]:
    """Schema violations of ``doc`` as an object of that Kubernetes version (strict schemas)."""
    if doc["kind"] == "ServiceMonitor":
        validator = jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA)
        return [f"ServiceMonitor: {e.message}" for e in validator.iter_errors(doc)]
    return kubeschema.errors(doc, version)


# ------------------------------------------------------------------ lint / render / validate


@pytest.mark.parametrize("value_file", VALUE_SETS, ids=VALUE_IDS)
def test_helm_lint_strict(helm: Helm, value_file: Path | None) -> None:
    proc = helm.lint(*_files(value_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_file", VALUE_SETS, ids=VALUE_IDS)
def test_rendered_manifests_match_kubernetes_schemas(
    helm: Helm, value_file: Path | None, version: str
) -> None:
    manifests = helm.render(*_files(value_file), kube_version=version)
    assert {"StatefulSet", "Service", "PodDisruptionBudget"} <= manifests.kinds()
    errors = [e for doc in manifests.docs for e in k8s_errors(doc, version)]
    assert not errors, "\n".join(errors)


def test_schema_validation_catches_a_misspelt_field(render) -> None:
    """The strict Kubernetes schemas reject unknown fields (so the check above can fail)."""
    sts = copy.deepcopy(render().statefulset)
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    [error] = k8s_errors(sts, KUBE_VERSIONS[-1])
    assert "spec/template/spec/containers/0" in error and "readinessProbes" in error
    sm = copy.deepcopy(render(BY_NAME["values-servicemonitor"]).one("ServiceMonitor"))
    sm["spec"]["endpoints"][0]["targetport"] = "http"
    [error] = k8s_errors(sm, KUBE_VERSIONS[-1])
    assert "targetport" in error


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("kafka.securityProtocol=SASL_TLS",), "/kafka/securityProtocol"),
        (("replicaCount=0",), "/replicaCount"),
        (("kairos.processingGuarantee=exactly-once",), "/kairos/processingGuarantee"),
        (("kafka.bootstrapServers=kafka",), "/kafka/bootstrapServers"),
        (("kairos.paritions=12",), "paritions"),
        (("rules.files.notes\\.txt=x",), "notes.txt"),
        (("kairos.sessionTimeout=120",), "/kairos/sessionTimeout"),
    ],
)
def test_values_schema_rejects_bad_values(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    proc = helm.template(sets=sets, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr and message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("kafka.securityProtocol=SASL_SSL",),
            "kafka.securityProtocol=SASL_SSL needs credentials: set kafka.sasl.username",
        ),
        (
            ("rules.existingConfigMap=r", "rules.files.a\\.yaml=x"),
            "set either rules.files or rules.existingConfigMap",
        ),
        (
            ("autoscaling.enabled=true", "autoscaling.minReplicas=4", "autoscaling.maxReplicas=2"),
            "autoscaling.minReplicas (4) is above autoscaling.maxReplicas (2)",
        ),
        (
            ("kairos.sessionTimeout=6", "kairos.heartbeatInterval=6"),
            "kairos.heartbeatInterval (6) must be below kairos.sessionTimeout (6)",
        ),
    ],
)
def test_chart_refuses_unworkable_combinations(
    helm: Helm, sets: tuple[str, ...], message: str
) -> None:
    proc = helm.template(sets=sets, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# ------------------------------------------------------------------ what the chart promises


def test_persistence_puts_rocksdb_on_a_claim_per_worker(render) -> None:
    m = render(BY_NAME["values-3-replicas-rocksdb"])
    sts = m.statefulset
    assert sts["spec"]["replicas"] == 3
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "standard-rwo"
    env = m.env()
    assert env["KAIROS_STORE"]["value"] == "rocksdb://"
    mounts = {v["name"]: v["mountPath"] for v in m.container["volumeMounts"]}
    assert mounts["data"] == env["KAIROS_DATA_DIR"]["value"]
    assert "data" not in {v["name"] for v in m.pod["volumes"]}  # the claim, not a pod volume


def test_without_persistence_state_is_in_memory_on_an_empty_dir(render) -> None:
    m = render(BY_NAME["values-sasl-ssl"])
    assert "volumeClaimTemplates" not in m.statefulset["spec"]
    assert m.env()["KAIROS_STORE"]["value"] == "memory://"
    volumes = {v["name"]: v for v in m.pod["volumes"]}
    assert "emptyDir" in volumes["data"]


def test_each_worker_advertises_its_own_stable_address(render) -> None:
    m = render()
    headless = m.one("Service", "peers")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert m.statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    env = m.env()
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    names = list(env)
    assert names.index("POD_NAME") < names.index("KAIROS_WEB_CANONICAL_URL")  # $(VAR) order
    port = m.container["ports"][0]["containerPort"]
    assert env["KAIROS_WEB_CANONICAL_URL"]["value"] == (
        f"http://$(POD_NAME).{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
    )
    assert env["KAIROS_WEB_HOST"]["value"] == "0.0.0.0"


def test_services_select_the_workers_on_the_http_port(render) -> None:
    m = render()
    pod_labels = m.statefulset["spec"]["template"]["metadata"]["labels"]
    assert m.statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for svc in m.of_kind("Service"):
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    assert m.container["ports"][0]["name"] == "http"


def test_probes_hit_healthz_and_readyz_and_each_can_be_switched_off(helm: Helm, render) -> None:
    c = render().container
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert "startupProbe" not in c
    assert render(BY_NAME["values-servicemonitor"]).container["startupProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http",
    }
    off = helm.render(sets=("livenessProbe.enabled=false", "readinessProbe.enabled=false"))
    assert "livenessProbe" not in off.container and "readinessProbe" not in off.container


@pytest.mark.parametrize("value_file", VALUE_SETS, ids=VALUE_IDS)
def test_workers_run_hardened(render, value_file: Path | None) -> None:
    m = render(*_files(value_file))
    pod_sc, sc = m.pod["securityContext"], m.container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {v["mountPath"]: v["name"] for v in m.container["volumeMounts"]}
    volumes = {v["name"]: v for v in m.pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert m.pod["automountServiceAccountToken"] is False
    resources = m.container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_pdb_allows_one_worker_down(render) -> None:
    m = render()
    pdb = m.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == m.statefulset["spec"]["selector"]


def test_hpa_scales_the_statefulset_and_owns_its_replica_count(render) -> None:
    m = render(BY_NAME["values-hpa"])
    hpa = m.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": m.statefulset["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert {x["resource"]["name"] for x in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in m.statefulset["spec"]  # helm upgrade must not undo the HPA
    assert "HorizontalPodAutoscaler" not in render().kinds()


def test_service_monitor_scrapes_metrics_of_every_worker(render) -> None:
    m = render(BY_NAME["values-servicemonitor"])
    sm = m.one("ServiceMonitor")
    selected = [
        svc
        for svc in m.of_kind("Service")
        if sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ]
    assert [s["spec"].get("clusterIP") for s in selected] == ["None"]  # headless: all pods
    assert selected[0]["spec"]["publishNotReadyAddresses"] is True
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert "ServiceMonitor" not in render().kinds()


def test_rules_configmap_is_mounted_and_applied_at_start(render) -> None:
    m = render(BY_NAME["values-3-replicas-rocksdb"])
    cm = m.one("ConfigMap", "rules")
    assert set(cm["data"]) == {"rebooking-offer.yaml"}
    env = m.env()
    mounts = {v["name"]: v for v in m.container["volumeMounts"]}
    assert mounts["rules"]["mountPath"] == env["KAIROS_RULES_DIR"]["value"]
    assert mounts["rules"]["readOnly"] is True
    volumes = {v["name"]: v for v in m.pod["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == cm["metadata"]["name"]
    assert "KAIROS_RULES_DIR" not in render().env()


def test_rule_files_of_the_ci_values_are_valid_rules(tmp_path: Path) -> None:
    from cep.rules import load_rules

    checked = 0
    for path in CI_VALUES:
        files = (yaml.safe_load(path.read_text()).get("rules") or {}).get("files") or {}
        for name, text in files.items():
            target = tmp_path / path.stem / name
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            checked += len(load_rules([target]))
    assert checked >= 1


def test_checksum_annotations_change_with_rules_and_secrets(helm: Helm) -> None:
    def annotations(*sets: str) -> dict[str, str]:
        sts = helm.render(sets=sets).statefulset
        return sts["spec"]["template"]["metadata"]["annotations"]

    base = annotations()
    rules = annotations("rules.files.a\\.yaml=name: a")
    token = annotations("auth.adminToken=t0")
    token2 = annotations("auth.adminToken=t1")
    assert rules["checksum/config"] != base["checksum/config"]
    assert rules["checksum/secret"] == base["checksum/secret"]
    assert token["checksum/secret"] != base["checksum/secret"]
    assert token["checksum/secret"] != token2["checksum/secret"]
    assert token["checksum/config"] == base["checksum/config"]


def test_sasl_ssl_credentials_come_from_the_chart_secret(render) -> None:
    m = render(BY_NAME["values-sasl-ssl"])
    secrets = {s["metadata"]["name"]: s for s in m.of_kind("Secret")}
    env = m.env()
    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAIROS_ADMIN_TOKEN"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["data"], name
    ca_file = Path(env["KAFKA_SSL_CAFILE"]["value"])
    mounts = {v["mountPath"]: v for v in m.container["volumeMounts"]}
    mount = mounts[str(ca_file.parent)]
    assert mount["readOnly"] is True
    volume = {v["name"]: v for v in m.pod["volumes"]}[mount["name"]]
    [item] = volume["secret"]["items"]
    assert item["path"] == ca_file.name
    assert item["key"] in secrets[volume["secret"]["secretName"]]["data"]
    assert all("value" not in env[n] for n in ("KAFKA_SASL_PASSWORD", "KAIROS_READ_TOKEN"))


def test_existing_secrets_and_configmap_are_referenced_not_created(render) -> None:
    m = render(BY_NAME["values-existing-secrets"])
    assert not m.of_kind("Secret") and not m.of_kind("ConfigMap")
    assert not m.of_kind("ServiceAccount")
    env = m.env()
    refs = {
        n: e["valueFrom"]["secretKeyRef"]
        for n, e in env.items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["KAFKA_SASL_USERNAME"] == {"name": "kairos-kafka-credentials", "key": "username"}
    assert refs["KAFKA_SASL_PASSWORD"] == {"name": "kairos-kafka-credentials", "key": "password"}
    assert refs["KAIROS_ADMIN_TOKEN"]["name"] == "kairos-api-tokens"
    volumes = {v["name"]: v for v in m.pod["volumes"]}
    assert volumes["kafka-tls"]["secret"]["secretName"] == "kairos-kafka-ca"
    assert volumes["kafka-tls"]["secret"]["items"] == [{"key": "ca.pem", "path": "ca.crt"}]
    assert volumes["rules"]["configMap"]["name"] == "kairos-rules"
    assert m.pod["serviceAccountName"] == "kairos-workers"
    assert m.container["image"].endswith("@sha256:" + "0123456789abcdef" * 4)


def _render_notes(helm: Helm, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` would print it (helm template does not render it)."""
    chart = tmp_path / "kairos"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )
    m = helm.render(chart=chart, sets=sets)
    return next(d for d in m.of_kind("ConfigMap") if d["metadata"]["name"] == "notes")["data"][
        "notes"
    ]


def test_notes_tell_how_to_reach_the_dashboard(helm: Helm, tmp_path: Path) -> None:
    notes = _render_notes(helm, tmp_path / "a")
    assert "kubectl --namespace kairos port-forward service/ci-kairos 6066:6066" in notes
    assert "http://127.0.0.1:6066/" in notes
    assert "Rule changes over HTTP are off" in notes
    nodeport = _render_notes(
        helm, tmp_path / "b", "service.type=NodePort", "auth.adminToken=x", "replicaCount=9"
    )
    assert 'get service ci-kairos -o jsonpath="{.spec.ports[0].nodePort}"' in nodeport
    assert "Rule changes over HTTP are off" not in nodeport
    assert "up to 9 workers for 8 partitions" in nodeport


def test_manifests_parse_and_carry_common_labels(render) -> None:
    m: Manifests = render(BY_NAME["values-servicemonitor"])
    for doc in m.docs:
        labels = doc["metadata"]["labels"]
        assert labels["team"] == "data-platform", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == "ci", doc["kind"]
