"""The CloudEvent's ``id`` and ``time`` without ``uuid.UUID`` and ``datetime``: the same text.

``uuid5_text`` must equal ``str(uuid.uuid5(ID_NAMESPACE, name))`` and ``rfc3339`` the
``datetime.strftime`` formatting it replaced, for every input (errors included).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.rules.detection import ID_NAMESPACE, Detection, rfc3339, uuid5_text


def _reference_rfc3339(ms: Any) -> str:
    """``rfc3339`` before the arithmetic path."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args)
    except Exception as exc:
        return "raised", (type(exc), str(exc))


#: The 4-digit-year range (the arithmetic path) and well beyond it on both sides.
END_MS = 253_402_300_800_000
BOUNDARIES = [
    0,
    1,
    999,
    1000,
    86_399_999,
    86_400_000,
    951_782_400_000,  # 2000-02-29
    1_795_521_600_123,
    END_MS - 1,
    END_MS,
    END_MS + 1,
    -1,
    -1000,
    -1001,
    -62_135_596_800_000,  # 0001-01-01
    -62_135_596_800_001,
    2**63,
]


@settings(max_examples=2000, deadline=None)
@given(
    ms=st.one_of(
        st.integers(0, END_MS + 10**6),
        st.integers(1_700_000_000_000, 1_900_000_000_000),
        st.integers(-(10**15), 10**15),
        st.sampled_from(BOUNDARIES),
        st.integers(-(2**70), 2**70),
    )
)
def test_rfc3339_equals_strftime(ms: int) -> None:
    assert _outcome(rfc3339, ms) == _outcome(_reference_rfc3339, ms)


@pytest.mark.parametrize("ms", [*BOUNDARIES, 1.5, 1000.0, True, float("nan"), None, "1"])
def test_rfc3339_edges_and_other_types(ms: Any) -> None:
    assert _outcome(rfc3339, ms) == _outcome(_reference_rfc3339, ms)


@settings(max_examples=300, deadline=None)
@given(
    days=st.lists(st.integers(0, 2_932_896), min_size=2, max_size=6), ms=st.integers(0, 86_399_999)
)
def test_rfc3339_across_days(days: list[int], ms: int) -> None:
    """The remembered date is the day asked, whatever day came before."""
    for day in days:
        value = day * 86_400_000 + ms
        assert rfc3339(value) == _reference_rfc3339(value)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values)
def test_uuid5_text_equals_uuid5(value: Any) -> None:
    canon = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    assert uuid5_text(canon) == str(uuid.uuid5(ID_NAMESPACE, canon.decode()))


@settings(max_examples=300, deadline=None)
@given(
    rule=st.text(min_size=1, max_size=8),
    version=st.integers(0, 2**31),
    key=st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1)),
    kind=st.sampled_from(["match", "timeout", "late"]),
    stages=st.dictionaries(
        st.text(max_size=4),
        st.lists(st.one_of(st.text(max_size=6), st.integers(-(2**63), 2**63 - 1)), max_size=3),
    ),
)
def test_detection_id_equals_the_uuid5_derivation(rule, version, key, kind, stages) -> None:
    d = Detection(rule, version, key, kind, stages, None, None)
    canon = orjson.dumps([rule, version, key, kind, stages], option=orjson.OPT_SORT_KEYS)
    assert d.id == str(uuid.uuid5(ID_NAMESPACE, canon.decode()))
