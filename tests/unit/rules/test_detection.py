"""CloudEvents 1.0 output and deterministic ids (the cloudevents SDK checks conformance)."""

from __future__ import annotations

import json

from cloudevents.core.formats.json import JSONFormat

from cep.rules.detection import Detection, rfc3339


def det(**kw) -> Detection:
    base = dict(
        rule="cart",
        version=2,
        key="c1",
        kind="match",
        stages={"cart": ["e1"]},
        start=1_000,
        end=61_000,
        data={"total": 3},
        action="offer",
        topic="offers",
    )
    return Detection(**{**base, **kw})


def test_cloudevent_is_valid_structured_json() -> None:
    ce = det().to_cloudevent()
    assert ce == {
        "specversion": "1.0",
        "id": det().id,
        "source": "/kairos/rules/cart/v2",
        "type": "kairos.offer",
        "subject": "c1",
        "datacontenttype": "application/json",
        "data": {"total": 3},
        "kairoskind": "match",
        "time": "1970-01-01T00:01:01.000Z",
    }
    parsed = JSONFormat().read(None, json.dumps(ce))
    assert parsed.get_id() == det().id
    assert parsed.get_type() == "kairos.offer"
    assert parsed.get_extension("kairoskind") == "match"


def test_alert_type_and_timeout_kind() -> None:
    ce = det(action="alert", kind="timeout").to_cloudevent()
    assert ce["type"] == "kairos.alert" and ce["kairoskind"] == "timeout"


def test_id_is_deterministic_and_depends_on_what_matched() -> None:
    assert det().id == det().id == det(data={"other": 1}, end=5).id  # data/time do not count
    ids = {
        det().id,
        det(stages={"cart": ["e2"]}).id,
        det(key="c2").id,
        det(version=3).id,
        det(rule="other").id,
        det(kind="timeout").id,
    }
    assert len(ids) == 6


def test_id_is_stable_across_releases() -> None:
    """Golden value: consumers dedupe on it, so the derivation must never change silently."""
    assert det().id == "e3f9efc8-2180-5486-bd4f-7a14081be39c"


def test_rfc3339() -> None:
    assert rfc3339(1_795_521_600_123) == "2026-11-24T12:00:00.123Z"
