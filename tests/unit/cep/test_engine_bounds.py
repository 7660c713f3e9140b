"""Bounded state: windows prune, the per-key cap bites with a counter, deadlines are cheap."""

from __future__ import annotations

from engine_helpers import E, named

from cep import Pattern, compile_pattern

a, b = named("a"), named("b")


def test_expired_runs_are_pruned_and_their_events_freed():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(10))
    st = nfa.new_state()
    for t in range(5):
        nfa.process(st, E(f"a{t}"), t)
    assert st.partial_match_count == 5 and len(st.events) == 5
    timeouts, _ = nfa.advance_time(st, 100)
    assert len(timeouts) == 5
    assert st.partial_match_count == 0 and st.events == {} and st.nodes == {}


def test_matched_and_discarded_runs_free_their_events():
    p = Pattern.begin("s").where(a).not_next("n").where(b).followed_by("e").where(named("c"))
    nfa = compile_pattern(p)
    st = nfa.new_state()
    for t, tag in enumerate(["a1", "b1", "a2", "x", "c1"]):
        nfa.process(st, E(tag), t)
    assert st.is_idle and st.events == {} and st.nodes == {}


def test_cap_drops_newest_runs_and_counts():
    p = Pattern.begin("s").where(a).followed_by_any("e").where(b)
    nfa = compile_pattern(p, max_partial_matches=3)
    st = nfa.new_state()
    for t in range(6):
        nfa.process(st, E(f"a{t}"), t)
    assert st.partial_match_count == 3
    assert st.dropped_partial_matches == 3
    # the oldest runs were kept
    (m0, m1, m2) = nfa.process(st, E("b1"), 10)
    assert [m.events["s"][0]["id"] for m in (m0, m1, m2)] == ["a0", "a1", "a2"]


def test_cap_default_is_ten_thousand():
    nfa = compile_pattern(Pattern.begin("s").where(a))
    assert nfa.max_partial_matches == 10_000


def test_next_deadline_is_the_earliest_expiry():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(10))
    st = nfa.new_state()
    assert nfa.next_deadline(st) is None
    nfa.process(st, E("a1"), 7)
    nfa.process(st, E("a2"), 3)
    assert nfa.next_deadline(st) == 13


def test_advance_before_deadline_does_not_scan_runs(monkeypatch):
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(1000))
    st = nfa.new_state()
    for t in range(200):
        nfa.process(st, E(f"a{t}"), t)
    calls = []
    real = nfa._advance
    monkeypatch.setattr(nfa, "_advance", lambda *args: calls.append(1) or real(*args))
    for t in range(200, 900):
        nfa.advance_time(st, t)
        nfa.process(st, E("x"), t)
    assert calls == []  # nothing was due: no run was looked at
    nfa.advance_time(st, 1000)
    assert calls == [1]


def test_events_that_no_run_reacts_to_do_not_change_state():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(1000))
    st = nfa.new_state()
    nfa.process(st, E("a1"), 1)
    before = st.to_bytes()
    for t in range(2, 50):
        assert nfa.process(st, E("x"), t) == []
    assert st.to_bytes() == before


def test_describe_lists_runs_for_display():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).one_or_more().within(10)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    assert nfa.describe(st) == []
    nfa.process(st, E("a1"), 3)
    (run,) = nfa.describe(st)
    assert run["stage"] == "s" and run["waiting_for"] == ["e"]
    assert [e["id"] for e in run["events"]["s"]] == ["a1"]
    assert run["started_at"] == 3 and run["expires_at"] == 13 and run["held"] is False
    nfa.process(st, E("b1"), 5)
    runs = nfa.describe(st)
    assert runs and all(r["stage"] == "e" and r["last_at"] == 5 for r in runs)
    assert [e["id"] for e in runs[0]["events"]["e"]] == ["b1"]
