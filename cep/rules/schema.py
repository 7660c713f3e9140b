"""The JSON Schema of the rule format, and schema errors turned into exact, helpful issues."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .durations import DURATION_HINT
from .source import Document, Path

_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}
_PATTERN_HINTS = {
    "^[a-z0-9-]+$": "use lowercase letters, digits and '-', e.g. rebooking-offer",
    "^[A-Za-z0-9._-]+$": "a topic name uses letters, digits, '.', '_' and '-', e.g. flight-events",
    "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$": "write a field path, e.g. event_id or meta.ts",
    "^[0-9]+(ms|s|m|h|d)$": DURATION_HINT,
    "^[A-Za-z_][A-Za-z0-9_]*$": "a stage name starts with a letter or '_' and has letters, digits and '_' "
    "(CEL reads it as stages.<name>), e.g. delayed",
}
_ONE_OF_HINTS = {
    "source": "expected a topic name or a non-empty list of distinct topic names, e.g. flight-events",
    "skip": "use no_skip, skip_to_next, skip_past_last_event, {skip_to_first: STAGE} or {skip_to_last: STAGE}",
    "times": "write a whole number >= 1, or {min: N, max: M}, or {min: N} for N or more",
}
_PRECISE = ("pattern", "minItems", "uniqueItems", "minimum", "minLength", "maxLength")
_DATA_HINT = (
    "a data value is a CEL expression (a string), a number, true/false/null, a list or a mapping"
)


@cache
def rule_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one rule document."""
    text = resources.files("cep.rules").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(rule_schema())


def schema_issues(doc: Document) -> list:
    """Every schema violation of ``doc`` as a RuleIssue, in document order."""
    issues = []
    errors = sorted(_validator().iter_errors(doc.value), key=lambda e: [str(p) for p in e.path])
    seen = set()
    for err in errors:
        for issue in _describe(doc, tuple(err.absolute_path), err):
            if (issue.path, issue.message) not in seen:
                seen.add((issue.path, issue.message))
                issues.append(issue)
    return issues


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"got {str(value).lower()}"
    if value is None:
        return "got null"
    if isinstance(value, dict):
        return "got a mapping"
    if isinstance(value, list):
        return "got a list"
    return f"got {value!r}"


def _example(schema: dict[str, Any]) -> str:
    ex = schema.get("examples")
    if not ex:
        return ""
    value = ex[0]
    return f", e.g. {json.dumps(value) if not isinstance(value, str) else value}"


def _describe(doc: Document, path: Path, err: jsonschema.ValidationError) -> list:
    v = err.validator
    inst = err.instance
    if v == "required":
        props = err.schema.get("properties", {})
        missing = [k for k in err.validator_value if isinstance(inst, dict) and k not in inst]
        return [
            doc.issue((*path, k), f"missing required key '{k}'; add it{_example(props.get(k, {}))}")
            for k in missing
        ]
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        out = []
        for k in inst:
            if k in allowed:
                continue
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            out.append(
                doc.issue(
                    (*path, k),
                    f"unknown key '{k}'; {hint}allowed keys: {', '.join(allowed)}",
                    key=True,
                )
            )
        return out
    if v == "anyOf" and path == ():
        return [
            doc.issue(
                (),
                "a rule needs 'emit' or 'on_timeout'; add e.g. emit: {kind: alert, topic: alerts}",
            )
        ]
    if v == "type":
        want = err.validator_value
        want = [want] if isinstance(want, str) else want
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in want)
        return [doc.issue(path, f"expected {names}, {_got(inst)}")]
    if v == "enum":
        choices = ", ".join(str(c) for c in err.validator_value)
        return [doc.issue(path, f"{_got(inst)[4:]} is not allowed; use one of: {choices}")]
    if v == "pattern":
        hint = _PATTERN_HINTS.get(err.validator_value, f"it must match {err.validator_value}")
        return [doc.issue(path, f"{inst!r} is not valid here; {hint}")]
    if v == "minItems":
        return [doc.issue(path, "must not be empty; list at least one item")]
    if v == "minLength":
        return [doc.issue(path, "must not be empty")]
    if v == "maxLength":
        return [doc.issue(path, f"is longer than {err.validator_value} characters; shorten it")]
    if v == "minimum":
        return [doc.issue(path, f"{inst!r} is too small; the minimum is {err.validator_value}")]
    if v == "uniqueItems":
        return [doc.issue(path, "lists the same value twice; keep each once")]
    if v == "oneOf":
        last = next((p for p in reversed(path) if isinstance(p, str)), "")
        deeper = [c for c in err.context or () if len(c.absolute_path) > len(path)]
        if deeper:
            best = jsonschema.exceptions.best_match(deeper)
            return _describe(doc, tuple(best.absolute_path), best)
        precise = [c for c in err.context or () if c.validator in _PRECISE]
        if precise:
            return _describe(doc, path, precise[0])
        hint = _ONE_OF_HINTS.get(str(last), _DATA_HINT)
        return [doc.issue(path, f"{hint}; {_got(inst)}")]
    return [doc.issue(path, err.message)]
