"""State table values: round trip, and exact errors for foreign or corrupt bytes."""

from __future__ import annotations

import pytest

from tables.codec import KeyState, StateCodecError, decode_key_state, encode_key_state


def test_round_trip() -> None:
    state = KeyState(
        rules={"rebooking-offer": (3, b'{"v":1}'), "lounge": (1, b"")},
        context={"tier": "gold", "miles": 12000},
    )
    assert decode_key_state(encode_key_state(state)) == state


def test_golden_bytes() -> None:
    """Version 1 layout is pinned: values written now must load in later versions."""
    blob = encode_key_state(KeyState(rules={"r": (2, b"xy")}, context={"a": 1}))
    assert blob == (
        b"KS\x01"
        + b"\x00\x00\x00\x07"
        + b'{"a":1}'
        + b"\x00\x01"
        + b"\x00\x01r"
        + b"\x00\x00\x00\x02"
        + b"\x00\x00\x00\x02xy"
    )


def test_golden_bytes_without_context() -> None:
    """A key with no context (the shortcut that skips orjson) keeps the pinned layout."""
    blob = encode_key_state(KeyState(rules={"r": (2, b"xy"), "é": (1, b"")}))
    assert blob == (
        b"KS\x01"
        + b"\x00\x00\x00\x02{}"
        + b"\x00\x02"
        + b"\x00\x01r\x00\x00\x00\x02\x00\x00\x00\x02xy"
        + b"\x00\x02\xc3\xa9\x00\x00\x00\x01\x00\x00\x00\x00"
    )
    assert decode_key_state(blob) == KeyState(rules={"r": (2, b"xy"), "é": (1, b"")})


def test_empty_state_is_falsy() -> None:
    assert not KeyState()
    assert KeyState(context={"a": 1})


def test_foreign_bytes() -> None:
    with pytest.raises(StateCodecError, match=r"starts with b'{\"a', expected b'KS\\x01'"):
        decode_key_state(b'{"a": 1}')


def test_truncated_bytes() -> None:
    blob = encode_key_state(KeyState(rules={"r": (2, b"xyz")}))
    with pytest.raises(StateCodecError, match=r"truncated or corrupt|trailing"):
        decode_key_state(blob[:-5])
    with pytest.raises(StateCodecError, match="1 trailing bytes"):
        decode_key_state(blob + b"!")
