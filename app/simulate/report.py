"""The demo's final report: detections and dead letters of a live run against the ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.simulate.truth import GroundTruth, Score, score


@dataclass
class DeadLetters:
    """What the dead-letter topic held, per scenario, compared byte for byte with the injected."""

    scenario: str
    injected: int
    received: int
    missing: int
    unexpected: int
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.unexpected == 0 and self.injected == self.received


@dataclass
class RunReport:
    scores: dict[str, Score]
    """Scenario -> score of its rules."""
    dead_letters: dict[str, DeadLetters]
    late: dict[str, tuple[int, int | None]]
    """Rule -> (late events injected, late events the worker reported; None if unknown)."""

    @property
    def every_rule_fired(self) -> bool:
        return all(r.matches > 0 for s in self.scores.values() for r in s.rules.values())

    @property
    def perfect(self) -> bool:
        return (
            all(s.perfect for s in self.scores.values())
            and all(d.exact for d in self.dead_letters.values())
            and all(got == want for want, got in self.late.values())
            and self.every_rule_fired
        )

    def problems(self) -> list[str]:
        out = []
        for name, s in self.scores.items():
            for r in s.rules.values():
                if r.matches == 0:
                    out.append(f"{r.rule}: never fired")
                if r.false_negatives:
                    out.append(f"{r.rule}: missed {r.false_negatives[:5]}")
                if r.false_positives:
                    out.append(f"{r.rule}: unexpected {r.false_positives[:5]}")
            if s.unknown_rules:
                out.append(f"{name}: detections of unknown rules {s.unknown_rules}")
        for d in self.dead_letters.values():
            if not d.exact:
                out.append(
                    f"{d.scenario}: DLQ holds {d.received} messages for {d.injected} injected "
                    f"({d.missing} missing, {d.unexpected} unexpected)"
                )
        for rule, (want, got) in self.late.items():
            if got != want:
                out.append(f"{rule}: {got} late events reported, {want} injected")
        return out


def build_report(
    truths: Mapping[str, GroundTruth],
    cloudevents: Sequence[dict[str, Any]],
    dead_letters: Mapping[str, Sequence[tuple[bytes, str]]],
    late_counts: Mapping[str, int] | None = None,
) -> RunReport:
    """Score a live run.

    ``cloudevents``: every CloudEvent read from the rules' output topics; ``dead_letters``:
    per scenario (source topic), the ``(value, reason)`` of each DLQ message; ``late_counts``:
    late events per rule as the worker counted them.
    """
    scores = {name: score(truth, cloudevents) for name, truth in truths.items()}
    # A CloudEvent of scenario A's rule is an 'unknown rule' for scenario B: keep only the
    # unknown rules no scenario knows.
    known = {rule for t in truths.values() for rule in t.expected}
    for s in scores.values():
        s.unknown_rules = [r for r in s.unknown_rules if r not in known]
    dlq = {}
    for name, truth in truths.items():
        want = Counter(m.value for m in truth.malformed)
        got_list = dead_letters.get(name, ())
        got = Counter(value for value, _ in got_list)
        dlq[name] = DeadLetters(
            scenario=name,
            injected=sum(want.values()),
            received=sum(got.values()),
            missing=sum((want - got).values()),
            unexpected=sum((got - want).values()),
            reasons=Counter(reason for _, reason in got_list),
        )
    late = {}
    for truth in truths.values():
        for rule in truth.expected:
            got = None if late_counts is None else late_counts.get(rule, 0)
            late[rule] = (len(truth.late), got)
    return RunReport(scores=scores, dead_letters=dlq, late=late)


def render(report: RunReport) -> Any:
    """A rich renderable: one row per rule, then the dead letters."""
    from rich.console import Group
    from rich.table import Table

    rules = Table(title="detections vs ground truth (events within bounds)", title_justify="left")
    for col in (
        "scenario",
        "rule",
        "expected keys",
        "detected",
        "matches",
        "precision",
        "recall",
        "late (got/injected)",
    ):
        rules.add_column(col, justify="right" if col not in ("scenario", "rule") else "left")
    for name, s in report.scores.items():
        for r in s.rules.values():
            want, got = report.late[r.rule]
            rules.add_row(
                name,
                r.rule,
                str(r.expected),
                str(r.detected),
                str(r.matches),
                f"{r.precision:.1%}",
                f"{r.recall:.1%}",
                f"{'?' if got is None else got}/{want}",
            )
    dlq = Table(title="dead-letter topic vs injected malformed messages", title_justify="left")
    for col in ("scenario", "injected", "in DLQ", "missing", "unexpected", "reasons"):
        dlq.add_column(col)
    for d in report.dead_letters.values():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(d.reasons.items()))
        dlq.add_row(
            d.scenario, str(d.injected), str(d.received), str(d.missing), str(d.unexpected), reasons
        )
    return Group(rules, dlq)
