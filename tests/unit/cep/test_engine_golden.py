"""Golden files pin the state format: bytes written by an earlier version must load and resume.

Each ``golden/*.json`` holds a pattern id, the events fed before the state was written, the
state bytes (``state``) and the output expected when the rest of the events is fed to the
loaded state. To add a format version, keep the old files and add new ones: old ones must keep
loading. ``PYTHONPATH=.:tests/unit/cep .venv/bin/python tests/unit/cep/test_engine_golden.py``
writes files for the *current* format, only for cases whose file is missing.
"""

from __future__ import annotations

import json
import pathlib

import pytest
from engine_helpers import E, flat, named

from cep import Pattern, SkipStrategy, compile_pattern

GOLDEN = pathlib.Path(__file__).parent / "golden"
a, b, c = named("a"), named("b"), named("c")

PATTERNS = {
    "followed_by_within": lambda: (
        Pattern.begin("s")
        .where(a)
        .followed_by("m")
        .where(b)
        .one_or_more()
        .followed_by("e")
        .where(c)
        .within(40)
    ),
    "absence_skip_past_last": lambda: (
        Pattern.begin("s", skip=SkipStrategy.skip_past_last_event())
        .where(a)
        .followed_by("m")
        .where(b)
        .not_followed_by("n")
        .where(c)
        .within(20)
    ),
}

CASES = {
    "v1_followed_by_within": (
        "followed_by_within",
        [("a1", 1), ("b1", 2), ("a2", 3), ("b2", 5), ("x", 6)],
        [("b3", 7), ("c1", 9), ("a3", 20), ("b4", 21)],
    ),
    "v1_absence_skip_past_last": (
        "absence_skip_past_last",
        [("a1", 1), ("a2", 2), ("b1", 4), ("x", 5)],
        [("b2", 8), ("c1", 30), ("a3", 31), ("b3", 32), ("x", 33)],
    ),
}


def resume(nfa, state, rest):
    out = []
    for tag, ts in rest:
        tos, ms = nfa.advance_time(state, ts)
        out += [["T", flat(t), t.timestamp] for t in tos] + [["M", flat(m)] for m in ms]
        out += [["M", flat(m)] for m in nfa.process(state, E(tag), ts)]
    tos, ms = nfa.advance_time(state, 10_000)
    out += [["T", flat(t), t.timestamp] for t in tos] + [["M", flat(m)] for m in ms]
    return out


def write(name: str) -> None:
    pid, before, rest = CASES[name]
    nfa = compile_pattern(PATTERNS[pid]())
    st = nfa.new_state()
    for tag, ts in before:
        nfa.advance_time(st, ts)
        nfa.process(st, E(tag), ts)
    blob = st.to_bytes().decode()
    doc = {
        "pattern": pid,
        "before": before,
        "rest": rest,
        "state": blob,
        "expected": resume(nfa, st, rest),
    }
    (GOLDEN / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("v*.json")), ids=lambda p: p.stem)
def test_golden_state_loads_and_resumes(path):
    doc = json.loads(path.read_text())
    nfa = compile_pattern(PATTERNS[doc["pattern"]]())
    state = nfa.state_from_bytes(doc["state"].encode())
    assert resume(nfa, state, [tuple(x) for x in doc["rest"]]) == doc["expected"]


def test_every_case_has_a_golden_file():
    assert {p.stem for p in GOLDEN.glob("v*.json")} >= set(CASES)


def test_golden_state_equals_freshly_written_state():
    # the current writer still produces the v1 bytes: the format did not drift silently
    for name, (pid, before, _rest) in CASES.items():
        nfa = compile_pattern(PATTERNS[pid]())
        st = nfa.new_state()
        for tag, ts in before:
            nfa.advance_time(st, ts)
            nfa.process(st, E(tag), ts)
        doc = json.loads((GOLDEN / f"{name}.json").read_text())
        assert st.to_bytes().decode() == doc["state"]


if __name__ == "__main__":
    for case in CASES:
        if not (GOLDEN / f"{case}.json").exists():
            write(case)
            print("wrote", case)
