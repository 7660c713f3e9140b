"""Action ``data`` read without CEL (``cep.rules.direct``) gives exactly what CEL gives.

For every input, :meth:`RuleEnv.data` with the direct path must return the same value (the
same JSON bytes), the same error messages, and raise the same exception as the CEL path alone
(the same ``RuleEnv`` with its plans' direct form removed), whether the direct path answers or
falls back to CEL. Inputs mix plain scalars with what CEL converts differently (ints beyond
64 bits, strings with lone surrogates, lists, maps, objects) and with reads that fail (a stage
without events, an index out of range, a missing field, no context, no last event).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from typing import Any

import cel
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.rules import RuleRunner
from cep.rules.celexpr import compile_cel
from cep.rules.direct import FALLBACK, DirectData, parse_read, plain
from cep.rules.evaluate import RESERVED_ID

from .helpers import rule

RESERVED = frozenset({RESERVED_ID})

RULE = """\
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
emit:
  kind: alert
  topic: alerts
  data: {data}
"""

#: data trees of plain reads only (the direct path applies), and one that is not.
TREES = {
    "latency": '{sent: "stages.b[0].x"}',
    "flight": (
        '{offer: "\'rebooking\'", flight: "stages.a[0].x", delay: "stages.a[0].y",'
        ' later: "stages.b[1].x", tier: context.tier, last: event.x, who: key,'
        " quoted: '\"it''s\"', n: 7, f: 2.5, t: true, nothing: null}"
    ),
    "nested": (
        '{outer: {inner: "stages.a[0].x", list: ["stages.b[0].y", "event.y", 3, "\'s\'"]},'
        " top: [context.tier, {k: key}]}"
    ),
    "list": '{l: ["stages.a[0].x", "context.vip"]}',
    "spaced": '{x: "stages . a [ 0 ] . x", y: " event.x "}',
    "mixed": '{x: "stages.a[0].x", y: "stages.a[0].x + 1"}',  # not direct: CEL throughout
}

ODD_INTS = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**20, 0, -1]
SURROGATES = ["\ud800", "a\udfff", "\udc80b"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.integers(-(2**70), 2**70),
    st.sampled_from(ODD_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e308, 5e-324]),
    st.text(max_size=6),
    st.sampled_from(SURROGATES),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=2), scalars, max_size=2),
    st.sampled_from([b"ab", dt.timedelta(seconds=3), (1, 2)]),
)


def mostly(common: Any, rare: Any, n: int) -> Any:
    """``common`` n times in n + 1, else ``rare`` (``one_of`` draws its branches evenly)."""
    return st.tuples(st.integers(0, n), common, rare).map(lambda t: t[2] if t[0] == 0 else t[1])


plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
fields = st.dictionaries(st.sampled_from(["x", "y", "z", RESERVED_ID]), values, max_size=4)
odd_events = st.builds(lambda f, t: {"id": "e", "type": t, **f}, fields, st.sampled_from("AB"))
# mostly events whose fields read are plain (the direct path answers), some odd ones (it
# falls back): a field missing or not plain, an unread field of any kind, the reserved id
plain_events = st.fixed_dictionaries(
    {"id": st.just("e"), "type": st.sampled_from("AB"), "x": plain_scalars, "y": plain_scalars},
    optional={"z": values, RESERVED_ID: st.text(max_size=2)},
)
events = mostly(plain_events, odd_events, 12)
stage_maps = mostly(
    st.fixed_dictionaries(
        {
            "a": st.lists(events, min_size=1, max_size=3),
            "b": st.lists(events, min_size=2, max_size=3),
        }
    ),
    st.dictionaries(st.sampled_from(["a", "b"]), st.lists(events, max_size=3), max_size=2),
    3,
)
full_contexts = st.fixed_dictionaries(
    {"tier": plain_scalars, "vip": plain_scalars}, optional={RESERVED_ID: values}
)
contexts = mostly(
    full_contexts,
    st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(["tier", "vip", RESERVED_ID]), values, max_size=3),
    ),
    3,
)
keys = mostly(st.text(max_size=4), st.one_of(st.sampled_from(ODD_INTS + SURROGATES), st.none()), 3)
lasts = mostly(plain_events, st.one_of(st.none(), odd_events), 3)


def _envs(tree: str) -> tuple[Any, Any, Any]:
    """(env with the direct path, env with CEL alone, the compiled data tree)."""
    r = rule(RULE.format(data=tree))
    fast = RuleRunner([r])._get("d").env
    slow = RuleRunner([r])._get("d").env
    compiled = r.emit.compiled
    slow.data(compiled, {}, "k", None, None)  # builds the plan; then drop its direct form
    for plan in slow._plans.values():
        plan.direct = None
    fast.data(compiled, {}, "k", None, None)
    return fast, slow, compiled


ENVS = {name: _envs(tree) for name, tree in TREES.items()}


def _outcome(env: Any, compiled: Any, *args: Any) -> tuple[str, Any]:
    try:
        value, errors = env.data(compiled, *args)
    except Exception as exc:
        return "raised", (type(exc), str(exc))
    return "value", (value, errors)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told from 0.0, types included."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", sorted(set(TREES) - {"mixed"}))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=stage_maps, key=keys, context=contexts, last=lasts, data=st.data())
def test_direct_data_equals_cel(name, stages, key, context, last, data) -> None:
    fast, slow, compiled = ENVS[name]
    got = _outcome(fast, compiled, stages, key, context, last)
    want = _outcome(slow, compiled, stages, key, context, last)
    assert got[0] == want[0], (got, want)
    if got[0] == "raised":
        assert got == want
        return
    (value, errors), (want_value, want_errors) = got[1], want[1]
    assert errors == want_errors
    plan = next(iter(fast._plans.values()))
    if plan.direct is not None and plan.direct.evaluate(stages, key, context, last) is not FALLBACK:
        # answered without CEL: exactly CEL's value, in CEL's types, and the same JSON bytes
        assert errors == []
        assert _same(value, want_value), (value, want_value)
        assert orjson.dumps(value) == orjson.dumps(want_value)
    else:
        # both from CEL, whose maps come back in no fixed key order
        opt = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        assert orjson.dumps(value, option=opt) == orjson.dumps(want_value, option=opt)


def test_the_trees_are_direct_except_the_mixed_one() -> None:
    for name, (fast, _, _) in ENVS.items():
        (plan,) = fast._plans.values()
        assert (plan.direct is not None) == (name != "mixed"), name


def test_direct_path_answers_for_plain_values() -> None:
    """Not every case falls back: plain events are read directly (and equal CEL)."""
    fast, slow, compiled = ENVS["flight"]
    stages = {
        "a": [{"id": "1", "type": "A", "x": "KA1", "y": 61}],
        "b": [{"id": "2", "type": "B", "x": 1.5}, {"id": "3", "type": "B", "x": 2**64 - 1}],
    }
    last = {"id": "3", "type": "B", "x": None}
    (plan,) = fast._plans.values()
    direct = plan.direct.evaluate(stages, "P1", {"tier": "gold"}, last)
    assert direct == {
        "offer": "rebooking",
        "flight": "KA1",
        "delay": 61,
        "later": 2**64 - 1,
        "tier": "gold",
        "last": None,
        "who": "P1",
        "quoted": "it's",
        "n": 7,
        "f": 2.5,
        "t": True,
        "nothing": None,
    }
    assert fast.data(compiled, stages, "P1", {"tier": "gold"}, last) == (direct, [])
    assert slow.data(compiled, stages, "P1", {"tier": "gold"}, last) == (direct, [])


@pytest.mark.parametrize(
    ("stages", "context", "last", "errors"),
    [
        ({"a": [{"x": 1, "y": 2}], "b": []}, {"tier": 1}, {"x": 1}, ["later: IndexError"]),
        ({"a": [{"y": 2}], "b": [{}, {"x": 1}]}, {"tier": 1}, {"x": 1}, ["flight: KeyError"]),
        ({"a": [{"x": 1, "y": 2}], "b": [{}, {"x": 1}]}, None, {"x": 1}, ["tier: KeyError"]),
        ({"a": [{"x": 1, "y": 2}], "b": [{}, {"x": 1}]}, {"tier": 1}, None, ["last: KeyError"]),
        (
            {"b": [{}, {"x": 1}]},
            {"tier": 1},
            {"x": 1},
            ["flight: IndexError", "delay: IndexError"],
        ),
    ],
)
def test_failed_reads_give_cel_errors(stages, context, last, errors) -> None:
    fast, slow, compiled = ENVS["flight"]
    (plan,) = fast._plans.values()
    assert plan.direct.evaluate(stages, "k", context, last) is FALLBACK
    got = fast.data(compiled, stages, "k", context, last)
    assert got == slow.data(compiled, stages, "k", context, last)
    assert [": ".join(e.removeprefix("data.").split(": ")[:2]) for e in got[1]] == errors


def test_unconvertible_value_raises_as_cel_does() -> None:
    """A value CEL cannot convert (here in an event whose field no expression indexes)
    fails the whole evaluation, as before."""
    fast, slow, compiled = ENVS["latency"]
    stages = {"b": [{"x": 1.0}, {"x": "\ud800"}]}
    with pytest.raises(ValueError) as want:
        slow.data(compiled, stages, "k", None, None)
    with pytest.raises(ValueError) as got:
        fast.data(compiled, stages, "k", None, None)
    assert str(got.value) == str(want.value)


@settings(max_examples=500, deadline=None)
@given(value=values)
def test_plain_values_come_back_from_cel_unchanged(value) -> None:
    """``plain`` is sound: CEL converts a plain value and gives it back as it was."""
    if not plain(value):
        return
    got = cel.compile("event.x").execute(cel.Context({"event": {"x": value}}))
    assert _same(got, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**64 - 1, True),
        (2**64, False),
        (-(2**63), True),
        (-(2**63) - 1, False),
        ("\ud800", False),
        ("é", True),
        (True, True),
        (None, True),
        (math.nan, True),
        ([1], False),
        ({"a": 1}, False),
        (b"x", False),
    ],
)
def test_plain(value, expected) -> None:
    assert plain(value) is expected


@pytest.mark.parametrize(
    ("source", "read"),
    [
        ("stages.b[0].sent", ("stage", "b", 0, "sent")),
        ("stages.a[12].x", ("stage", "a", 12, "x")),
        ("event.x", ("event", "x")),
        ("context.tier", ("context", "tier")),
        ("key", ("key",)),
        ("'rebooking'", ("lit", "rebooking")),
        ('"it\'s"', ("lit", "it's")),
        ("''", ("lit", "")),
        # anything else is left to CEL
        ("stages.a[0]._kairos_eid", None),
        ("event._kairos_eid", None),
        ("stages.zz[0].x", None),
        ("stages.a[00].x", None),
        ("stages.a[0u].x", None),
        ("stages.a[0].x.y", None),
        ("stages.a[0].size()", None),
        ("event", None),
        ("event['x']", None),
        ("(event.x)", None),
        ("r'raw'", None),
        ("b'bytes'", None),
        ("'''triple'''", None),
        ("'esc\\n'", None),
        ("1", None),
        ("true", None),
        ("event.x + 1", None),
    ],
)
def test_parse_read(source, read) -> None:
    assert parse_read(compile_cel(source), ["a", "b"], RESERVED) == read


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_characters="\\'\n\r"), max_size=12))
def test_string_literals_read_as_cel_reads_them(text) -> None:
    source = f"'{text}'"
    try:
        expr = compile_cel(source)
    except ValueError:
        return  # CEL refuses it: no rule has it
    read = parse_read(expr, [], RESERVED)
    assert read == ("lit", text)
    assert expr.program.execute(cel.Context({})) == text


def test_whole_reads_are_not_direct() -> None:
    """When the CEL path would convert whole events, stages or contexts, there is no
    direct form (its checks could not see every value converted)."""
    compiled = {"x": compile_cel("stages.a[0].x")}
    assert DirectData.build(compiled, ["a"], RESERVED, [("a", None)], False, False, False) is None
    assert (
        DirectData.build(compiled, ["a"], RESERVED, [("a", frozenset("x"))], None, False, False)
        is None
    )
