import pytest

from cep.rules.celexpr import CelCompileError, compile_cel, split_guard


def test_reads_only_the_fields_used() -> None:
    e = compile_cel("event.type == 'X' && event['delay'] >= 60 && stages.first[0].p < event.p")
    assert e.reads.event_fields == {"type", "delay", "p"}
    assert e.reads.stage_names == {"first"}
    assert e.reads.context_fields == frozenset()


def test_whole_event_when_used_as_a_value() -> None:
    assert compile_cel("size(event) > 2").reads.event_fields is None
    assert compile_cel("stages.s.exists(e, e.x > 1)").reads.stage_names == {"s"}
    assert compile_cel("size(stages) > 0").reads.stage_names is None


def test_strings_are_not_identifiers() -> None:
    e = compile_cel("event.note == 'event.secret and stages.x'")
    assert e.reads.event_fields == {"note"}
    assert e.reads.stage_names == frozenset()


def test_comprehension_variables_are_not_unknown() -> None:
    e = compile_cel("stages.s.all(x, x.price > event.price)")
    assert e.reads.bound == {"x"}


@pytest.mark.parametrize(
    ("src", "guard", "rest"),
    [
        ("event.type == 'X'", ("type", "X"), None),
        ("'X' == event.type", ("type", "X"), None),
        ('event.type == "X" && event.v > 1', ("type", "X"), "event.v > 1"),
        ("event.v > 1 && event.type == 'X' && event.w", ("type", "X"), "event.v > 1 && event.w"),
        ("event.type == 'X' || event.v > 1", None, "event.type == 'X' || event.v > 1"),
        ("event.v > 1 && (event.type == 'X')", None, "event.v > 1 && (event.type == 'X')"),
        ("event.type == 'a\\'b'", None, "event.type == 'a\\'b'"),
        ("event.ok ? event.type == 'X' : false", None, "event.ok ? event.type == 'X' : false"),
    ],
)
def test_split_guard(src: str, guard, rest) -> None:
    assert split_guard(src) == (guard, rest)


def test_syntax_error_names_the_column() -> None:
    with pytest.raises(CelCompileError) as info:
        compile_cel("event.x >= ")
    assert (info.value.line, info.value.column) == (1, 12)
    assert info.value.message.startswith(
        "CEL syntax error at line 1, column 12: the expression ends too early"
    )


def test_unknown_variable_names_the_column() -> None:
    with pytest.raises(CelCompileError) as info:
        compile_cel("event.x > 1 && evnt.y")
    assert str(info.value) == (
        "unknown variable 'evnt' at line 1, column 16; use context, event, key, stages"
    )


FLAT_CASES = [
    "event.value > 10 && event.type == 'A'",
    "has(event.coupon) && event.coupon == 'X'",
    "event['odd-name'] == 1 || event.n == 2",
    "has(event.meta.ts) && event.meta.ts > 5",
    "event.tags.exists(t, t == 'vip')",
    "has(context.tier) ? context.tier == 'gold' : key == 'k1'",
    "size(event) > 2",
]
FLAT_EVENTS = [
    {
        "value": 11,
        "type": "A",
        "coupon": "X",
        "odd-name": 1,
        "n": 2,
        "meta": {"ts": 9},
        "tags": ["vip"],
    },
    {"value": 3, "type": "B", "n": 2, "meta": {}, "tags": []},
    {},
]


@pytest.mark.parametrize("src", FLAT_CASES)
def test_flattened_expressions_agree_with_the_original(src: str) -> None:
    from cep.rules.celexpr import flatten

    expr = compile_cel(src)
    flat = flatten(expr)
    assert "event." not in flat.program.source or flat.uses >= {"event"}
    for event in FLAT_EVENTS:
        for context in ({"tier": "gold"}, {}):
            nested = {"event": event, "context": context, "key": "k1"}
            variables = {n: event[f] for n, f in flat.event_vars if f in event}
            variables |= {n: f in event for n, f in flat.has_vars}
            variables |= {n: context[f] for n, f in flat.context_vars if f in context}
            variables |= {n: f in context for n, f in flat.context_has_vars}
            variables |= {k: nested[k] for k in flat.uses}
            assert _outcome(flat.program, variables) == _outcome(expr.program, nested), (
                event,
                context,
            )


def _outcome(program, variables):
    try:
        return program.execute(variables)
    except Exception:
        return "error"
