"""Validate manifests against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``.

Same schema files and lookup as ``kubernetes_validate.validate(doc, version, strict=True)``,
with the parsed schemas cached (the definitions file is 1.6 MB per version) and every error
reported, not only the first.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = resources.files("kubernetes_validate") / "kubernetes-json-schema"


@functools.cache
def _definitions(version: str) -> Resource[Any]:
    directory = SCHEMAS / f"v{version}-local-strict"
    if not directory.is_dir():
        shipped = sorted(p.name for p in SCHEMAS.iterdir() if p.name.endswith("-local-strict"))
        raise LookupError(
            f"kubernetes-validate ships no schemas for Kubernetes {version}; it has {shipped}"
        )
    return Resource.from_contents(json.loads((directory / "_definitions.json").read_text()))


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> Draft202012Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = SCHEMAS / f"v{version}-local-strict" / f"{kind.lower()}-{group_version}.json"
    definitions = _definitions(version)
    if not path.is_file():
        raise LookupError(f"Kubernetes {version} has no {kind} in {api_version}")
    schema = json.loads(path.read_text())
    registry: Registry[Any] = Resource.from_contents(schema) @ (definitions @ Registry())
    return Draft202012Validator(schema, registry=registry)


def errors(doc: dict[str, Any], version: str) -> list[str]:
    """Every schema violation of ``doc`` in Kubernetes ``version`` ("1.36.0"), as text."""
    validator = _validator(version, doc["kind"], doc["apiVersion"])
    found = []
    for error in validator.iter_errors(doc):
        where = "/".join(str(p) for p in error.absolute_path) or "."
        found.append(f"{doc['kind']}/{doc['metadata'].get('name')} at {where}: {error.message}")
    return found
