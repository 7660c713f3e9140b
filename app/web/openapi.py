"""The OpenAPI 3 document served at ``/api/openapi.json``.

Kept true by tests: every registered route is described here and every path
described here is registered (tests/unit/web/test_openapi.py), and schemathesis
fuzzes the served API against it.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "DETECTION_KINDS",
    "KEY_MAX_LENGTH",
    "RULE_NAME_PATTERN",
    "STATIC_NAME_PATTERN",
    "document",
]

RULE_NAME_PATTERN = r"^[a-z0-9-]+$"
#: ``match``/``timeout``: what happened (CloudEvent ``kairoskind``); ``offer``/``alert``: the
#: rule's action (CloudEvent ``type`` ``kairos.<action>``).
DETECTION_KINDS = ("match", "timeout", "offer", "alert")
KEY_MAX_LENGTH = 512
STATIC_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*\.(css|js|svg|ico)$"

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }
    if headers:
        out["headers"] = headers
    return out


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_R400 = _problem("A parameter is invalid; `invalid_params` names it and says why.")
_R401 = _problem(
    "A token is required (or the one sent is wrong).",
    {"WWW-Authenticate": {"schema": {"type": "string"}}},
)
_R403 = _problem("Rule changes over HTTP are disabled (KAIROS_ADMIN_TOKEN is not set).")
_R404 = _problem("Nothing by that name.")
_R405 = _problem("Method not allowed on this path.")

_READ_SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}]
_ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]

_RULE_NAME_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Rule name.",
    "schema": {"type": "string", "pattern": RULE_NAME_PATTERN},
}
_RULE_QUERY = {
    "name": "rule",
    "in": "query",
    "required": False,
    "description": "Only detections of this rule.",
    "schema": {"type": "string", "pattern": RULE_NAME_PATTERN},
}
_KIND_QUERY = {
    "name": "kind",
    "in": "query",
    "required": False,
    "description": "match or timeout (what happened), offer or alert (the rule's action).",
    "schema": {"type": "string", "enum": list(DETECTION_KINDS)},
}

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "invalid_params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "reason"],
                    "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
            "errors": {
                "type": "array",
                "description": "Rule validation issues (422 only).",
                "items": {"$ref": "#/components/schemas/RuleIssue"},
            },
        },
    },
    "RuleIssue": {
        "type": "object",
        "required": ["file", "path", "message"],
        "properties": {
            "file": {"type": ["string", "null"]},
            "path": {
                "type": ["string", "null"],
                "description": "Where in the file, e.g. stages[2].where.",
            },
            "message": {"type": "string"},
            "line": {"type": ["integer", "null"]},
            "column": {"type": ["integer", "null"]},
        },
    },
    "CloudEvent": {
        "type": "object",
        "description": "A detection as a CloudEvents 1.0 JSON object: `type` is "
        "kairos.offer or kairos.alert, `source` /kairos/rules/<rule>/v<version>, `subject` "
        "the key, and the extension `kairoskind` says match or timeout.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string"},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "type": {"type": "string"},
            "subject": {"type": "string"},
            "time": {"type": "string"},
            "datacontenttype": {"type": "string"},
            "kairoskind": {"type": "string"},
            "data": {},
        },
    },
    "PartialMatch": {
        "type": "object",
        "description": "One partial match of a key in a rule: where it stands.",
        "required": ["stage"],
        "properties": {
            "stage": {"type": "string", "description": "Last stage reached."},
            "waiting_for": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Stages that can come next.",
            },
            "events": {"description": "Events matched so far, per stage."},
            "started_at": {"type": ["integer", "null"]},
            "expires_at": {
                "type": ["integer", "null"],
                "description": "When the window closes (epoch ms, in the rule's time domain).",
            },
            "time_left_ms": {"type": ["integer", "null"]},
        },
    },
    "KeyState": {
        "type": "object",
        "required": ["key", "rules"],
        "properties": {
            "key": {"type": "string"},
            "rules": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["partial_matches"],
                    "properties": {
                        "partial_matches": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/PartialMatch"},
                        }
                    },
                },
            },
            "context": {"type": ["object", "null"]},
            "recent": {"type": "array", "items": {"$ref": "#/components/schemas/CloudEvent"}},
            "recovering": {
                "type": "string",
                "description": "Present while the owning worker is not ready (tables still "
                "recovering, or a rebalance): the answer may be incomplete. Says why.",
            },
        },
    },
    "Rule": {
        "type": "object",
        "required": ["name", "version"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "description": {"type": ["string", "null"]},
            "source": {"description": "Source topic(s)."},
            "stages": {"type": "array", "items": {"type": "string"}},
            "counts": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"} for k in ("events", "matches", "timeouts", "late")
                },
            },
            "last_error": {"type": ["string", "null"]},
        },
    },
}


def _paths() -> dict[str, Any]:
    return {
        "/": {
            "get": {
                "summary": "The dashboard (HTML).",
                "tags": ["dashboard"],
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "Script, style and icon files of the dashboard.",
                "tags": ["dashboard"],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": STATIC_NAME_PATTERN},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            t: {"schema": {"type": "string"}}
                            for t in (
                                "text/css",
                                "text/javascript",
                                "image/svg+xml",
                                "image/x-icon",
                            )
                        },
                    },
                    "404": _R404,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers.",
                "tags": ["operations"],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive."
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: tables recovered and partitions assigned.",
                "description": "503 while starting; `status: stalled` once not ready for longer "
                "than KAIROS_RECOVERY_STALL_SECONDS (also logged).",
                "tags": ["operations"],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"const": "ready"}}}, "Ready."
                    ),
                    "503": _json(
                        {
                            "type": "object",
                            "required": ["status", "reason"],
                            "properties": {
                                "status": {"enum": ["starting", "stalled"]},
                                "reason": {"type": "string"},
                                "not_ready_for_s": {"type": "number"},
                                "stall_after_s": {"type": "number"},
                            },
                        },
                        "Not ready, and why.",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format).",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "All kairos_* metrics of this worker.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document.",
                "tags": ["operations"],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/api/keys/{key}": {
            "get": {
                "summary": "Where a key stands in every rule.",
                "description": "Partial matches per rule (stage reached, what comes next, time "
                "left), the key's context and its recent detections. Any worker answers: the "
                "request is forwarded to the worker owning the key (X-Kairos-Served-By names it).",
                "tags": ["state"],
                "security": _READ_SECURITY,
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "description": "The entity key (case-sensitive).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH},
                    }
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/KeyState"}, "The key's state."),
                    "400": _R400,
                    "401": _R401,
                    "404": _R404,
                    "502": _problem("The owning worker could not be reached."),
                    "503": _problem(
                        "The owning worker is not known yet (rebalancing), or it is still "
                        "recovering its tables and knows nothing of the key so far. Retry-After "
                        "says when to ask again."
                    ),
                    "504": _problem("The owning worker did not answer in time."),
                },
            }
        },
        "/api/rules": {
            "get": {
                "summary": "Active rules with their counts and last error.",
                "tags": ["rules"],
                "security": _READ_SECURITY,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["rules"],
                            "properties": {
                                "rules": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Rule"},
                                }
                            },
                        },
                        "Active rules.",
                    ),
                    "401": _R401,
                },
            },
            "post": {
                "summary": "Validate and apply a rule file (needs the admin token).",
                "description": "The body is the rule file. A rule with the name of an active "
                "one replaces it when its version is higher.",
                "tags": ["rules"],
                "security": _ADMIN_SECURITY,
                "parameters": [
                    {
                        "name": "filename",
                        "in": "query",
                        "required": False,
                        "description": "Name reported in validation errors (.yaml, .yml or .json).",
                        "schema": {
                            "type": "string",
                            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(ya?ml|json)$",
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/yaml": {"schema": {"type": "string", "minLength": 1}},
                        "application/json": {"schema": {"type": "object"}},
                        "text/plain": {"schema": {"type": "string", "minLength": 1}},
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Rule"}, "Applied."),
                    "400": _R400,
                    "401": _R401,
                    "403": _R403,
                    "413": _problem("Body too large."),
                    "422": _problem("The file is not a valid rule; `errors` lists every issue."),
                },
            },
        },
        "/api/rules/{name}": {
            "get": {
                "summary": "One active rule.",
                "tags": ["rules"],
                "security": _READ_SECURITY,
                "parameters": [_RULE_NAME_PARAM],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Rule"}, "The rule."),
                    "401": _R401,
                    "404": _R404,
                },
            },
            "delete": {
                "summary": "Retire a rule (needs the admin token).",
                "tags": ["rules"],
                "security": _ADMIN_SECURITY,
                "parameters": [_RULE_NAME_PARAM],
                "responses": {
                    "204": {"description": "Retired."},
                    "401": _R401,
                    "403": _R403,
                    "404": _R404,
                },
            },
        },
        "/api/matches": {
            "get": {
                "summary": "Recent detections (offers and alerts from matches and timeouts), newest first.",
                "description": "The whole cluster's detections, whichever worker answers: every "
                "worker reads the rules' output topics and keeps the newest 1000, ordered by the "
                "time the owning worker produced them.",
                "tags": ["detections"],
                "security": _READ_SECURITY,
                "parameters": [
                    _RULE_QUERY,
                    _KIND_QUERY,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["detections"],
                            "properties": {
                                "detections": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/CloudEvent"},
                                }
                            },
                        },
                        "Detections.",
                    ),
                    "400": _R400,
                    "401": _R401,
                },
            }
        },
        "/api/stats": {
            "get": {
                "summary": "This worker's events/s, matches/s and timeouts/s, one point a second.",
                "tags": ["detections"],
                "security": _READ_SECURITY,
                "parameters": [
                    {
                        "name": "seconds",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 600, "default": 300},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["worker", "series", "totals"],
                            "properties": {
                                "worker": {"type": "string"},
                                "series": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["t", "events", "matches", "timeouts"],
                                        "properties": {
                                            k: {"type": "number"}
                                            for k in ("t", "events", "matches", "timeouts")
                                        },
                                    },
                                },
                                "totals": {
                                    "type": "object",
                                    "properties": {
                                        k: {"type": "integer"}
                                        for k in ("events", "matches", "timeouts", "late", "dlq")
                                    },
                                },
                            },
                        },
                        "Rates and totals.",
                    ),
                    "400": _R400,
                    "401": _R401,
                },
            }
        },
        "/api/stream": {
            "get": {
                "summary": "Detections as they happen (Server-Sent Events).",
                "description": "First an `event: hello` naming the worker, then one "
                "`event: detection` per detection of the whole cluster (read back from the "
                "rules' output topics), with a CloudEvent as data. Browsers "
                "(EventSource cannot send headers) may pass the read token as ?access_token=.",
                "tags": ["detections"],
                "security": _READ_SECURITY,
                "parameters": [
                    _RULE_QUERY,
                    _KIND_QUERY,
                    {
                        "name": "access_token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "An endless event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _R400,
                    "401": _R401,
                },
            }
        },
    }


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Kairos",
        "version": "1",
        "description": "Pattern detection on Kafka: state per key, rules, detections, operations.",
    },
    "paths": _paths(),
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "KAIROS_READ_TOKEN for reads (when set), KAIROS_ADMIN_TOKEN "
                "for rule changes.",
            }
        },
    },
}


def document() -> dict[str, Any]:
    """A fresh copy of the OpenAPI document."""
    return copy.deepcopy(_DOCUMENT)
