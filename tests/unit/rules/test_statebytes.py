"""State bytes written by :class:`cep.rules.statebytes.StateEncoder` equal the engine's own.

The encoder reuses the bytes of buffered entries and of idle engine parts across writes; after
any sequence of events, releases, out-of-order inserts, late events and loads it must give
exactly ``cep.serde.dump_state`` (so states load in either direction), and the runner's
``table_form`` must say what the flush used to compute from ``is_idle`` and
``partial_match_count``.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from cep import StateFormatError
from cep.eventtime import Buffer, new_buffer
from cep.rules import RuleRunner, statebytes
from cep.serde import dump_state

from .helpers import rule

SEQ_RULE = """\
name: seq
source: events
key: k
id: id
time: ts
max_out_of_orderness: 2m
within: 10m
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit: {kind: alert, topic: alerts}
on_timeout: {kind: alert, topic: timeouts}
"""

ABSENT_RULE = """\
name: absent
source: events
key: k
id: id
time: ts
max_out_of_orderness: 1m
within: 5m
stages:
  - name: a
    where: event.type == 'A'
  - name: no_c
    after: relaxed
    negate: true
    where: event.type == 'C'
emit: {kind: alert, topic: alerts}
"""

NAMES = ("seq", "absent")


def _runner() -> RuleRunner:
    return RuleRunner([rule(SEQ_RULE), rule(ABSENT_RULE)])


def _stream(seed: int, n: int) -> list[tuple[str, dict[str, Any], int]]:
    """Keys k0..k3, types A/B/C/X, times rising ~10 s apart with jitter up to 3 min back:
    in-order appends, inserts before buffered entries and late events all happen."""
    rnd = random.Random(seed)
    out = []
    t = 1_700_000_000_000
    for i in range(n):
        t += rnd.randint(0, 20_000)
        ts = t - (rnd.randint(0, 180_000) if rnd.random() < 0.3 else 0)
        event = {"id": f"e{i}", "k": f"k{rnd.randint(0, 3)}", "type": rnd.choice("AABCX"), "ts": ts}
        if rnd.random() < 0.2:
            event["note"] = {"n": rnd.random(), "s": "é\u2028\x01"}
        out.append((event["k"], event, ts))
    return out


def _check(runner: RuleRunner, name: str, state: Any) -> None:
    c = runner._get(name)
    expected = dump_state(c.nfa, state)
    assert c.encoder.encode(state) == expected
    assert runner.state_to_bytes(name, state) == c.state_header + expected
    blob, count = runner.table_form(name, state)
    if state.is_idle:
        assert (blob, count) == (None, 0)
    else:
        assert blob == c.state_header + expected
        assert count == state.partial_match_count


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("every", [1, 3, 17])
def test_encoder_gives_the_engine_bytes_after_every_kind_of_change(seed: int, every: int) -> None:
    """Events, releases, inserts before encoded entries and late events; written every
    ``every`` events (1: each key at each event, as per-message writes do)."""
    runner = _runner()
    states: dict[tuple[str, str], Any] = {}
    max_ts: dict[str, int] = {}
    for i, (key, event, ts) in enumerate(_stream(seed, 600), 1):
        for name in NAMES:
            st = states.get((name, key))
            if st is None:
                st = states[name, key] = runner.new_state(name)
            max_ts[name] = max(max_ts.get(name, ts), ts)
            wm = max_ts[name] - runner.rule(name).max_out_of_orderness
            runner.process(name, st, key, event, ts, watermark=wm)
            if i % 50 == 0:  # a tick: every key of the rule to the watermark
                for (n2, _k2), st2 in states.items():
                    if n2 == name:
                        runner.advance(name, st2, _k2, wm)
            if i % every == 0:
                for (n2, _k2), st2 in states.items():
                    if n2 == name:
                        _check(runner, name, st2)
    assert any(type(st.early) is Buffer for st in states.values())


def test_a_loaded_buffer_is_encoded_as_written_and_then_kept() -> None:
    runner = _runner()
    st = runner.new_state("seq")
    for key, event, ts in _stream(5, 40):
        runner.process("seq", st, key, event, ts, watermark=ts - 600_000)
    blob = runner.state_to_bytes("seq", st)
    loaded = runner.state_from_bytes("seq", blob)
    assert loaded.early and type(loaded.early) is not Buffer  # as the engine loads it
    assert runner.state_to_bytes("seq", loaded) == blob
    assert type(loaded.early) is Buffer and loaded == st
    for key, event, ts in _stream(6, 40):  # and it goes on in step with the state
        for s in (st, loaded):
            runner.process("seq", s, key, event, ts, watermark=ts - 300_000)
        assert runner.state_to_bytes("seq", loaded) == runner.state_to_bytes("seq", st)
        _check(runner, "seq", loaded)


def test_idle_engine_part_with_a_buffer_and_without_a_watermark() -> None:
    """The template path (start run alone) and its fall-backs: no watermark yet (-inf, null),
    float times (orjson's float format), ints beyond 64 bits (orjson refuses them)."""
    runner = _runner()
    c = runner._get("seq")
    st = runner.new_state("seq")
    runner.process("seq", st, "k", {"id": 1, "type": "X", "ts": 5}, 5, watermark=None)
    runner.process("seq", st, "k", {"id": 2, "type": "X", "ts": 9}, 9, watermark=None)
    _check(runner, "seq", st)
    st.watermark = float("-inf")
    _check(runner, "seq", st)
    st.watermark = 1.5
    _check(runner, "seq", st)
    st.watermark, st.max_ts = 3, 2**64
    with pytest.raises(StateFormatError):
        dump_state(c.nfa, st)
    with pytest.raises(StateFormatError):
        c.encoder.encode(st)


def test_an_event_orjson_cannot_encode_gives_the_engine_error() -> None:
    runner = _runner()
    c = runner._get("seq")
    st = runner.new_state("seq")
    runner.process("seq", st, "k", {"id": 1, "type": "X", "ts": 5, "v": {1, 2}}, 5, watermark=0)
    with pytest.raises(StateFormatError) as engine:
        dump_state(c.nfa, st)
    with pytest.raises(StateFormatError) as ours:
        c.encoder.encode(st)
    assert str(ours.value) == str(engine.value)


def test_templates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statebytes, "_TEMPLATES_MAX", 2)
    runner = _runner()
    c = runner._get("seq")
    for i in range(5):  # a new sequence number each time: a new template each time
        st = runner.new_state("seq")
        st.seq = i
        runner.process("seq", st, "k", {"id": i, "type": "X", "ts": 9}, 9, watermark=0)
        _check(runner, "seq", st)
        assert len(c.encoder._templates) <= 2


def test_buffer_keeps_its_bytes_in_step() -> None:
    """``Buffer.joined`` equals encoding every entry, whatever was inserted or released."""
    rnd = random.Random(7)
    encoded: list[Any] = []

    def encode(entry: Any) -> bytes:
        encoded.append(entry)
        return orjson.dumps(entry)

    buf = new_buffer()
    arrival = 0
    for step in range(2000):
        op = rnd.random()
        if op < 0.5 or not buf:
            ts = rnd.randint(0, 100)
            entry = [ts, arrival, {"a": arrival}]
            arrival += 1
            at = next((i for i, e in enumerate(buf) if (e[0], e[1]) > (ts, entry[1])), len(buf))
            buf.insert(at, entry)
            buf.forget_from(at)
        elif op < 0.7:
            n = rnd.randint(1, len(buf))
            del buf[:n]
            buf.gone += n
        if step % rnd.choice([1, 2, 5]) == 0:
            encoded.clear()
            assert buf.joined(encode) == b",".join(map(orjson.dumps, buf))
            assert len(buf.sizes) == len(buf)
            assert len(encoded) <= len(buf)


def test_table_form_of_a_fresh_state_is_nothing() -> None:
    runner = _runner()
    assert runner.table_form("seq", runner.new_state("seq")) == (None, 0)
    st = runner.new_state("seq")
    runner.process("seq", st, "k", {"id": 1, "type": "A", "ts": 5}, 5, watermark=5)
    blob, count = runner.table_form("seq", st)
    assert count == st.partial_match_count == 1
    assert blob == runner.state_to_bytes("seq", st)
