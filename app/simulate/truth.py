"""Ground truth of a simulated run, and scoring detections against it.

The truth is written by the simulator from its own stories (never from the engine): which
keys must trigger which rule, which events were made late, which malformed messages were
injected. :func:`score` compares detections (backtest output lines or CloudEvents read from
the offers/alerts topics) with it, per rule, at the level of (rule, key).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 1


@dataclass(frozen=True)
class LateEvent:
    event_id: str
    key: str
    ts: int
    type: str


@dataclass(frozen=True)
class MalformedMessage:
    position: int
    """0-based index in the produced stream (the line number in a JSONL file)."""
    kind: str
    value_b64: str

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)


@dataclass
class GroundTruth:
    scenario: str
    seed: int
    topic: str
    context_topic: str
    max_out_of_orderness_ms: int
    entities: int
    events: int
    context_records: int
    rule_keys: dict[str, str]
    expected: dict[str, list[str]]
    """Rule name -> sorted keys that must trigger it (on the events within bounds)."""
    late: list[LateEvent] = field(default_factory=list)
    malformed: list[MalformedMessage] = field(default_factory=list)
    out_of_order: int = 0
    """Events that arrived after a later one but within max_out_of_orderness."""

    def to_json(self) -> bytes:
        doc = {"format": FORMAT_VERSION, **asdict(self)}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_json() + b"\n")

    @classmethod
    def from_json(cls, data: bytes | str) -> GroundTruth:
        doc = orjson.loads(data)
        if doc.pop("format", None) != FORMAT_VERSION:
            raise ValueError(
                f"ground truth format is not {FORMAT_VERSION}: regenerate it with `kairos simulate`"
            )
        doc["late"] = [LateEvent(**x) for x in doc.get("late", [])]
        doc["malformed"] = [MalformedMessage(**x) for x in doc.get("malformed", [])]
        return cls(**doc)

    @classmethod
    def read(cls, path: str | Path) -> GroundTruth:
        return cls.from_json(Path(path).read_bytes())


@dataclass
class RuleScore:
    rule: str
    expected: int
    detected: int
    true_positives: int
    false_positives: list[str]
    false_negatives: list[str]
    matches: int
    """Detections of kind 'match' (several per key are possible)."""

    @property
    def precision(self) -> float:
        return self.true_positives / self.detected if self.detected else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.expected if self.expected else 1.0


@dataclass
class Score:
    rules: dict[str, RuleScore]
    unknown_rules: list[str]
    """Rules seen in the detections that the truth does not know."""

    @property
    def perfect(self) -> bool:
        return not self.unknown_rules and all(
            not r.false_positives and not r.false_negatives for r in self.rules.values()
        )


def detection_fields(d: dict[str, Any]) -> tuple[str, str, str]:
    """(rule, key, kind) of a backtest line or of a Kairos CloudEvent."""
    if "specversion" in d:  # CloudEvents structured mode, source /kairos/rules/<rule>/v<version>
        parts = str(d.get("source", "")).strip("/").split("/")
        rule = parts[2] if len(parts) >= 3 and parts[:2] == ["kairos", "rules"] else ""
        return rule, str(d.get("subject")), str(d.get("kairoskind") or "match")
    return str(d["rule"]), str(d["key"]), str(d.get("kind", "match"))


def score(truth: GroundTruth, detections: Iterable[dict[str, Any]]) -> Score:
    """Per rule, compare the keys that matched with the keys that must."""
    seen: dict[str, set[str]] = {rule: set() for rule in truth.expected}
    counts: dict[str, int] = dict.fromkeys(truth.expected, 0)
    unknown: set[str] = set()
    for d in detections:
        rule, key, kind = detection_fields(d)
        if kind != "match":
            continue
        if rule not in seen:
            unknown.add(rule)
            continue
        seen[rule].add(key)
        counts[rule] += 1
    rules = {}
    for rule, keys in truth.expected.items():
        want = set(keys)
        got = seen[rule]
        rules[rule] = RuleScore(
            rule=rule,
            expected=len(want),
            detected=len(got),
            true_positives=len(want & got),
            false_positives=sorted(got - want),
            false_negatives=sorted(want - got),
            matches=counts[rule],
        )
    return Score(rules=rules, unknown_rules=sorted(unknown))
