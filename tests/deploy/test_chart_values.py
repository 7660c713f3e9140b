"""values.yaml is documented line by line (``## @param``) and matches values.schema.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.helm import CHART, CI_VALUES

VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
PARAM = re.compile(r"^\s*## @param (?P<path>[\w.\-]+)(?P<doc>.*)$")


def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value that is not a non-empty mapping."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def all_paths(value: Any, prefix: str = "") -> set[str]:
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(f"{prefix}{k}")
            out |= all_paths(v, f"{prefix}{k}.")
    return out


def merged(base: Any, override: Any) -> Any:
    """Helm's merge of a values file over the defaults: maps recursively, the rest replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merged(base.get(k), v) if k in base else v
        return out
    return override


def params() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in VALUES.read_text().splitlines():
        m = PARAM.match(line)
        if m:
            assert m["path"] not in found, f"@param {m['path']} documented twice"
            found[m["path"]] = m["doc"].strip()
    return found


def test_every_value_is_documented_with_a_param_line() -> None:
    values = yaml.safe_load(VALUES.read_text())
    documented = params()

    def covered(path: str) -> bool:
        parts = path.split(".")
        return any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1))

    missing = [p for p in leaf_paths(values) if not covered(p)]
    assert not missing, f"values without a '## @param' line: {missing}"
    stale = sorted(set(documented) - all_paths(values))
    assert not stale, f"'## @param' lines naming no value: {stale}"
    undescribed = [p for p, doc in documented.items() if len(doc) < 10]
    assert not undescribed, f"'## @param' lines without a description: {undescribed}"


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize(
    "value_file", [None, *CI_VALUES], ids=lambda p: p.stem if p else "defaults"
)
def test_values_match_the_schema(value_file: Path | None) -> None:
    values = yaml.safe_load(VALUES.read_text())
    if value_file is not None:
        values = merged(values, yaml.safe_load(value_file.read_text()))
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]
    assert not errors, "\n".join(errors)


def test_schema_describes_only_values_that_exist() -> None:
    schema = json.loads(SCHEMA.read_text())
    values = yaml.safe_load(VALUES.read_text())

    def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, sub in node.get("properties", {}).items():
            out.add(f"{prefix}{k}")
            out |= schema_paths(sub, f"{prefix}{k}.")
        return out

    dead = sorted(
        schema_paths(schema)
        - all_paths(values)
        - {"global", "updateStrategy.rollingUpdate", "resources.claims"}
    )
    assert not dead, f"values.schema.json describes values that values.yaml does not have: {dead}"


def test_template_helpers_are_prefixed_with_the_chart_name() -> None:
    name = yaml.safe_load((CHART / "Chart.yaml").read_text())["name"]
    defined = re.findall(
        r'\{\{-?\s*define\s+"([^"]+)"', (CHART / "templates" / "_helpers.tpl").read_text()
    )
    assert defined, "no helpers found"
    assert [d for d in defined if not d.startswith(f"{name}.")] == []
    for template in (CHART / "templates").glob("*"):
        assert "define" not in template.read_text() or template.name == "_helpers.tpl", template
