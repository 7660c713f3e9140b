"""One test per validation error class: the exact message, file, line, column and path."""

import pytest

from tests.unit.rules.helpers import BASE, issues

H = "name: r\nsource: e\nkey: k\n"
E = "emit: {kind: alert, topic: alerts}\n"

CASES = [
    pytest.param(
        "rule.yaml",
        "name: r\nsource: [a\n",
        [
            "rule.yaml:3:1: <document>: invalid YAML: expected ',' or ']', but got '<stream end>'; fix the syntax (quote values that contain ': ' or start with '!', '&', '*')"
        ],
        id="yaml_syntax",
    ),
    pytest.param(
        "rule.json",
        '{"name": "r",}',
        [
            "rule.json:1:14: <document>: invalid JSON: Expecting property name enclosed in double quotes; fix the syntax"
        ],
        id="json_syntax",
    ),
    pytest.param(
        "rule.yaml",
        "",
        ["rule.yaml: <document>: the file is empty; write a rule (see `kairos rules schema`)"],
        id="empty",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\nkey: again\n",
        ["rule.yaml:8:1: key: duplicate key 'key'; keep one of them"],
        id="duplicate_key",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:1:1: key: missing required key 'key'; add it, e.g. passenger_id"],
        id="missing",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    wher: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:5: stages[0].wher: unknown key 'wher'; did you mean 'where'? allowed keys: after, allow_combinations, consecutive, greedy, name, negate, one_or_more, optional, stages, times, until, where"
        ],
        id="unknown_key",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\ntime: 5\n",
        ["rule.yaml:8:7: time: expected a string, got 5"],
        id="type",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alarm, topic: alerts}\n",
        ["rule.yaml:7:14: emit.kind: 'alarm' is not allowed; use one of: offer, alert"],
        id="enum",
    ),
    pytest.param(
        "rule.yaml",
        "name: My Rule\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:1:7: name: 'My Rule' is not valid here; use lowercase letters, digits and '-', e.g. rebooking-offer"
        ],
        id="name",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\nwithin: 2 hours\n",
        [
            "rule.yaml:8:9: within: '2 hours' is not valid here; write a whole number and a unit: 250ms, 5s, 10m, 2h or 1d"
        ],
        id="duration",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\ntime: meta..ts\n",
        [
            "rule.yaml:8:7: time: 'meta..ts' is not valid here; write a field path, e.g. event_id or meta.ts"
        ],
        id="field_path",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: 'my events'\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:2:9: source: 'my events' is not valid here; a topic name uses letters, digits, '.', '_' and '-', e.g. flight-events"
        ],
        id="topic",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: 1st\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:5:11: stages[0].name: '1st' is not valid here; a stage name starts with a letter or '_' and has letters, digits and '_' (CEL reads it as stages.<name>), e.g. delayed"
        ],
        id="stage_name",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages: []\nemit: {kind: alert, topic: a}\n",
        ["rule.yaml:4:9: stages: must not be empty; list at least one item"],
        id="min_items",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\nversion: 0\n",
        ["rule.yaml:8:10: version: 0 is too small; the minimum is 1"],
        id="minimum",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\n",
        [
            "rule.yaml:1:1: <document>: a rule needs 'emit' or 'on_timeout'; add e.g. emit: {kind: alert, topic: alerts}"
        ],
        id="no_action",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: []\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:2:9: source: must not be empty; list at least one item"],
        id="source_oneof",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\nskip: skip_all\n",
        [
            "rule.yaml:8:7: skip: use no_skip, skip_to_next, skip_past_last_event, {skip_to_first: STAGE} or {skip_to_last: STAGE}; got 'skip_all'"
        ],
        id="skip_oneof",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: events\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\n    times: many\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:12: stages[0].times: write a whole number >= 1, or {min: N, max: M}, or {min: N} for N or more; got 'many'"
        ],
        id="times_oneof",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: [a, a]\nkey: k\nstages:\n  - name: a\n    where: event.type == 'A'\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:2:9: source: lists the same value twice; keep each once"],
        id="unique",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n  - name: a\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:11: stages[1].name: stage name 'a' is already used by stages[0]; give every stage a unique name"
        ],
        id="dup_stage",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    after: strict\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:5: stages[0].after: the first stage of a list has no previous stage; remove 'after' (a group's contiguity is set on the group)"
        ],
        id="after_first",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    negate: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:5: stages[0].negate: a pattern cannot begin with a negated stage; put at least one stage before it"
        ],
        id="negate_first",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n  - name: g\n    where: event.x == 1\n    stages:\n      - name: b\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:5: stages[1].where: 'where' is not allowed on a group; put it on a stage inside stages[1].stages"
        ],
        id="where_group",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nwithin: 1h\nstages:\n  - name: a\n  - name: b\n    negate: true\n    one_or_more: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:9:5: stages[1].one_or_more: 'one_or_more' cannot be used with negate: true; a negated stage matches one event or none"
        ],
        id="negate_quant",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nwithin: 1h\nstages:\n  - name: a\n  - name: b\n    negate: true\n    after: any\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:9:12: stages[1].after: negate works with after: strict (not_next) or relaxed (not_followed_by), not any"
        ],
        id="negate_any",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    times: 2\n    one_or_more: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:5: stages[0].one_or_more: use either times or one_or_more, not both (times: {min: 1} is one or more)"
        ],
        id="times_and_oom",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    times: {min: 3, max: 2}\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:6:26: stages[0].times.max: max (2) is below min (3); make max >= 3"],
        id="max_lt_min",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    greedy: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:5: stages[0].greedy: 'greedy' applies to a repeated stage; add one_or_more: true or times: N"
        ],
        id="greedy_single",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    one_or_more: true\n    consecutive: true\n    allow_combinations: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:8:5: stages[0].allow_combinations: consecutive and allow_combinations exclude each other; keep one"
        ],
        id="consec_comb",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    times: 2\n    until: event.x == 1\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:5: stages[0].until: until stops a stage that repeats without bound; use it with one_or_more: true or times: {min: N}"
        ],
        id="until_bounded",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    where: event.x >= \nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:22: stages[0].where: CEL syntax error at line 1, column 11: the expression ends too early; write a complete CEL expression, e.g. event.type == 'Booking' && event.amount > 100"
        ],
        id="cel_syntax",
    ),
    pytest.param(
        "rule.yaml",
        'name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    where: "event.x >= "\nemit: {kind: alert, topic: alerts}\n',
        [
            "rule.yaml:6:24: stages[0].where: CEL syntax error at line 1, column 12: the expression ends too early; write a complete CEL expression, e.g. event.type == 'Booking' && event.amount > 100"
        ],
        id="cel_syntax_quoted",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    where: evnt.x > 1\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:12: stages[0].where: unknown variable 'evnt' at line 1, column 1; use context, event, key, stages"
        ],
        id="cel_unknown_var",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n  - name: b\n    where: event.p > stages.c[0].p\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:7:12: stages[1].where: stages.c names no stage; stages are: a, b"],
        id="stage_ref_unknown",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    where: size(stages.b) == 0\n  - name: b\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:12: stages[0].where: stages.b comes after stage 'a', so it is always empty here; refer to 'a' or an earlier stage"
        ],
        id="stage_ref_later",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n  - name: b\n    negate: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:5: stages[1].negate: a pattern ending with a negated relaxed stage (not_followed_by) needs a window; add within: e.g. within: 30m"
        ],
        id="not_followed_last",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\non_timeout: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:6:1: on_timeout: partial matches only time out with a window; add within: e.g. within: 2h"
        ],
        id="timeout_no_within",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nskip: {skip_to_first: zz}\nstages:\n  - name: a\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:4:23: skip.skip_to_first: 'zz' names no stage; stages are: a"],
        id="skip_unknown",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: event.a + stages.x\nstages:\n  - name: a\nemit: {kind: alert, topic: alerts}\n",
        ["rule.yaml:3:16: key: unknown variable 'stages' at line 1, column 11; use event"],
        id="key_cel",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\nemit: {kind: alert, topic: alerts, data: {f: 'stages.a[0].'}}\n",
        [
            "rule.yaml:6:59: emit.data.f: CEL syntax error at line 1, column 13: no viable alternative at input '.'; write a complete CEL expression, e.g. stages.delayed[0].flight or 'fixed text'"
        ],
        id="data_cel",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\nemit: {kind: alert, topic: alerts, data: {f: 'stages.b[0].x'}}\n",
        ["rule.yaml:6:46: emit.data.f: stages.b names no stage; stages are: a"],
        id="data_stage",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    one_or_more: true\n    greedy: true\n  - name: b\n    optional: true\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:8:5: stages[1]: the pattern engine rejects this: Optional pattern cannot be preceded by greedy pattern (see docs/rules.md, 'Stages')"
        ],
        id="engine",
    ),
    pytest.param(
        "rule.yaml",
        "name: r\nsource: e\nkey: k\nstages:\n  - name: a\n    optional: true\n  - name: b\n    negate: true\n    after: strict\n  - name: c\nemit: {kind: alert, topic: alerts}\n",
        [
            "rule.yaml:7:5: stages[1]: the pattern engine rejects this: Specifying a pattern with an optional path to NOT condition is not supported yet. You can simulate such pattern with two independent patterns, one with and the other without the optional part. (see docs/rules.md, 'Stages')"
        ],
        id="engine2",
    ),
]


@pytest.mark.parametrize(("filename", "text", "expected"), CASES)
def test_validation_error(filename: str, text: str, expected: list[str]) -> None:
    assert issues(text, filename) == expected


def test_base_rule_is_valid() -> None:
    assert issues(BASE) == []


def test_all_errors_of_a_file_are_reported_together() -> None:
    text = H + "stages:\n  - name: a\n    where: evnt.x\n  - name: a\n" + E
    assert issues(text) == [
        "rule.yaml:6:12: stages[0].where: unknown variable 'evnt' at line 1, column 1; "
        "use context, event, key, stages",
        "rule.yaml:7:11: stages[1].name: stage name 'a' is already used by stages[0]; "
        "give every stage a unique name",
    ]


def test_block_scalar_error_points_into_the_file() -> None:
    text = H + "stages:\n  - name: a\n    where: |\n      event.x == 1 &&\n        evnt.y\n" + E
    assert issues(text) == [
        "rule.yaml:8:9: stages[0].where: unknown variable 'evnt' at line 2, column 3; "
        "use context, event, key, stages"
    ]


def test_duplicate_rule_names_across_files_and_missing_paths(tmp_path) -> None:
    from cep.rules import validate_paths

    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(BASE)
    (tmp_path / "empty").mkdir()
    rules, found = validate_paths(
        [tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "empty", tmp_path / "nope.yaml"]
    )
    assert [r.name for r in rules] == ["r"]
    assert [str(i) for i in found] == [
        f"{tmp_path}/empty: <document>: no rule files (*.yaml, *.yml, *.json) in this directory",
        f"{tmp_path}/nope.yaml: <document>: no such file or directory; check the path",
        f"{tmp_path}/b.yaml: name: rule 'r' is already defined in {tmp_path}/a.yaml; "
        "rule names are unique, rename one",
    ]


def test_a_file_with_errors_is_never_partly_loaded() -> None:
    from cep.rules import RuleValidationError, load_rules_text

    good = BASE
    bad = BASE.replace("name: r", "name: s").replace("where: event.type == 'A'", "where: (")
    with pytest.raises(RuleValidationError) as info:
        load_rules_text(good + "---\n" + bad, "pack.yaml")
    assert [str(e) for e in info.value.errors] == [
        "pack.yaml[document 1]:14:13: stages[0].where: CEL syntax error at line 1, column 2: "
        "the expression ends too early; write a complete CEL expression, "
        "e.g. event.type == 'Booking' && event.amount > 100"
    ]


def test_context_block_errors() -> None:
    text = BASE + "context: {source: profiles, key: 'stages.a + event.b'}\n"
    assert issues(text) == [
        "rule.yaml:8:35: context.key: unknown variable 'stages' at line 1, column 1; use event"
    ]
    assert issues(BASE + "context: {source: profiles}\n") == [
        "rule.yaml:8:10: context.key: missing required key 'key'; add it, e.g. passenger_id"
    ]
