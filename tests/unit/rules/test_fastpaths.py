"""The runner's shortcuts change nothing.

* ``data`` of an action converts to CEL only what its expressions read (the stages they name,
  projected to the fields read as ``stages.s[i].f``; ``event``/``context``/``key`` only when
  used): every value and every error message equals the one computed from all variables.
* ``RuleRunner.process``/``advance``/``next_deadline`` give the same detections, deadlines and
  state bytes as the plain ``EventTimeProcessor`` calls they replace.
"""

from __future__ import annotations

import random
from typing import Any

import cel
import orjson

from cep.rules import RuleRunner
from cep.rules.celexpr import CelExpr
from cep.rules.evaluate import RESERVED_ID, jsonable, strip

from .helpers import rule

DATA_RULE = """\
name: d
source: events
key: k
id: id
time: ts
within: 1h
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    where: event.type == 'B'
    one_or_more: true
  - name: c
    where: event.type == 'C'
emit:
  kind: alert
  topic: alerts
  data:
    field: stages.a[0].x
    two: stages.a[0].x + stages.b[0].x
    nested:
      list: ["stages.b[0].y", "stages.c[0].size()"]
      whole: "stages.c[0]"
    count: size(stages.b)
    mapped: stages.b.map(e, e.x)
    missing: stages.a[0].nope
    reserved: stages.a[0]._kairos_eid
    out_of_range: stages.b[5].x
    last: event.x
    has_last: has(event.y)
    whole_last: event
    key: key
    tier: context.tier
    ctx_has: has(context.vip)
    const: "'c'"
"""

SMALL_RULE = """\
name: s
source: events
key: k
id: id
time: ts
stages:
  - name: a
    where: event.type == 'A'
emit:
  kind: alert
  topic: alerts
  data: {x: "stages.a[0].x", tier: context.tier}
"""


def _reference(env: Any, compiled: Any, stages: dict, key: Any, context: Any, last: Any) -> Any:
    """``RuleEnv.data`` converting every variable in full (the code before the shortcut)."""
    variables = {
        "stages": {n: [strip(e) for e in stages.get(n, [])] for n in env.stage_names},
        "key": key,
        "context": context or {},
        "event": strip(last) if last is not None else {},
    }
    ctx = cel.Context(variables)
    errors: list[str] = []

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, CelExpr):
            try:
                return jsonable(node.program.execute(ctx))
            except Exception as exc:
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
                return None
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(compiled, "data"), errors


def _canon(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _event(rnd: random.Random, stage: str) -> dict[str, Any]:
    ev: dict[str, Any] = {"id": f"e{rnd.randrange(1000)}", "type": stage.upper()}
    for f in ("x", "y", "z", "nope"):
        if rnd.random() < 0.8:
            ev[f] = rnd.choice([1, 2, "s", [1, 2], {"q": 1}, None, 2.5])
    if rnd.random() < 0.5:
        ev[RESERVED_ID] = "eid"
    return ev


def test_action_data_converts_only_what_it_reads_and_gives_the_same_result() -> None:
    r = rule(DATA_RULE)
    env = RuleRunner([r])._get("d").env
    compiled = r.emit.compiled
    rnd = random.Random(5)
    for _ in range(300):
        stages = {
            n: [_event(rnd, n) for _ in range(rnd.randrange(0 if n != "a" else 1, 4))]
            for n in ("a", "b", "c")
            if rnd.random() < 0.9
        }
        context = rnd.choice([None, {}, {"tier": "gold"}, {"tier": 3, "vip": True, RESERVED_ID: 1}])
        last = rnd.choice([None, _event(rnd, "c")])
        key = rnd.choice(["k1", 7])
        got = env.data(compiled, stages, key, context, last)
        want = _reference(env, compiled, stages, key, context, last)
        # a map result comes back from CEL in no fixed key order (either way): compare sorted
        assert _canon(got) == _canon(want)


def test_runner_paths_give_the_plain_event_time_results() -> None:
    runners = {}
    for name in ("fast", "plain"):
        runners[name] = RuleRunner([rule(DATA_RULE), rule(SMALL_RULE)])
    for c in runners["plain"]._rules.values():
        c.etp._knows_deadline = False  # every step asks the NFA, as the original code did
    states: dict[tuple[str, str, str], Any] = {}
    rnd = random.Random(11)
    now = 1_000
    outputs = 0
    for i in range(1500):
        now += rnd.choice([0, 1_000, 30_000, 120_000])
        key = f"k{rnd.randrange(8)}"
        ev = {
            "id": f"e{i}",
            "k": key,
            "ts": now - rnd.randrange(200_000),
            "type": rnd.choice("ABBCD"),
            "x": rnd.randrange(5),
        }
        ctx = {"tier": "gold"} if key < "k4" else None
        results = {}
        for name, runner in runners.items():
            got = []
            for rname, rkey, ts, eid in runner.route("events", ev):
                st = states.get((name, rname, rkey))
                if st is None:
                    st = states[name, rname, rkey] = runner.new_state(rname)
                wm = runner.observe(rname, ts) if i % 3 else None
                got += runner.process(rname, st, rkey, ev, ts, ctx, wm, eid)
                if i % 7 == 0:
                    got += runner.advance(rname, st, rkey, now - 150_000, ctx)
                got.append(runner.next_deadline(rname, st))
                got.append(runner.state_to_bytes(rname, st))
            results[name] = got
        assert _canon_all(results["fast"]) == _canon_all(results["plain"]), f"event {i}"
        outputs += sum(1 for x in results["fast"] if hasattr(x, "kind"))
    assert outputs > 50  # matches, timeouts and late events were compared, not only silence


def _canon_all(items: list[Any]) -> list[Any]:
    return [
        (x.rule, x.key, x.kind, x.stages, x.start, x.end, _canon(x.data), x.errors)
        if hasattr(x, "kind")
        else x
        for x in items
    ]


def test_extractor_values_equal_key_time_and_id() -> None:
    """``Extractor.values`` (one call, fields read inline) gives what ``key``/``time``/``id``
    give, and fails with the same error where one of them fails."""
    from cep.rules.errors import EventError
    from cep.rules.extract import Extractor

    ex = Extractor(rule(SMALL_RULE))
    events: list[dict[str, Any]] = [
        {"k": "p1", "ts": 5, "id": "e1"},
        {"k": 7, "ts": 5},
        {"k": "p1", "ts": "2026-01-01T00:00:01+00:00", "id": 3},
        {"k": "p1", "ts": 5.9, "id": None},
        {"k": "", "ts": 5},
        {"k": True, "ts": 5},
        {"ts": 5},
        {"k": "p1"},
        {"k": "p1", "ts": True},
        {"k": "p1", "ts": "soon"},
    ]
    for event in events:
        try:
            expected: Any = (ex.key(event), ex.time(event), ex.id(event))
        except EventError as exc:
            expected = (str(exc), exc.code)
        try:
            got: Any = ex.values(event)
        except EventError as exc:
            got = (str(exc), exc.code)
        assert got == expected, event
