"""Declarative rules: YAML/JSON patterns with CEL conditions, compiled onto the engine.

``load_rules`` validates files (every issue, with file, path and column) and returns
:class:`Rule` objects; :class:`RuleRunner` routes events to rules and runs them on the engine,
producing :class:`Detection` objects (CloudEvents via ``to_cloudevent()``). The backtest and the
Faust runtime both drive ``RuleRunner``.
"""

from .detection import Detection
from .errors import EventError, RuleError, RuleIssue, RuleValidationError
from .loader import load_rules, load_rules_text, validate_paths
from .model import Action, ContextSpec, Rule, Stage
from .runner import Route, RuleRunner
from .schema import rule_schema

__all__ = [
    "Action",
    "ContextSpec",
    "Detection",
    "EventError",
    "Route",
    "Rule",
    "RuleError",
    "RuleIssue",
    "RuleRunner",
    "RuleValidationError",
    "Stage",
    "load_rules",
    "load_rules_text",
    "rule_schema",
    "validate_paths",
]
