"""Bytes of one entity key's value in the state table.

A key's value holds the engine state of every rule that has seen the key (tagged with the
rule's version, so a replaced version is recognised) and the key's context. Rule states stay
opaque bytes until a rule touches them, so a batch decodes only what it uses.

Format (version 1), big-endian::

    b"KS" 0x01
    u32 len, context (orjson object)
    u16 count, then per rule: u16 len, name (utf-8), u32 version, u32 len, state bytes
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["KeyState", "StateCodecError", "decode_key_state", "encode_key_state"]

MAGIC = b"KS\x01"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U32_U32 = struct.Struct(">II")
_NO_CONTEXT = MAGIC + _U32.pack(2) + b"{}"  # the head of a key without context
_NAMES: dict[str, bytes] = {}  # rule name -> its u16 length + utf-8 bytes


class StateCodecError(ValueError):
    """The bytes are not a key state this version can read."""


@dataclass
class KeyState:
    """One key's rule states (``name -> (version, state bytes)``) and context."""

    rules: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:  # an empty state is not worth a table entry
        return bool(self.rules or self.context)


def encode_key_state(state: KeyState) -> bytes:
    if state.context:
        ctx = orjson.dumps(state.context)
        parts = [MAGIC, _U32.pack(len(ctx)), ctx, _U16.pack(len(state.rules))]
    else:
        parts = [_NO_CONTEXT, _U16.pack(len(state.rules))]
    for name, (version, blob) in state.rules.items():
        head = _NAMES.get(name)
        if head is None:
            raw = name.encode()
            head = _NAMES[name] = _U16.pack(len(raw)) + raw
        parts += [head, _U32_U32.pack(version, len(blob)), blob]
    return b"".join(parts)


def decode_key_state(data: bytes) -> KeyState:
    if not data.startswith(MAGIC):
        raise StateCodecError(
            f"state table value starts with {data[:3]!r}, expected {MAGIC!r}: "
            "written by another program or a newer Kairos"
        )
    try:
        pos = len(MAGIC)
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        context = orjson.loads(data[pos : pos + n])
        pos += n
        (count,) = _U16.unpack_from(data, pos)
        pos += 2
        rules: dict[str, tuple[int, bytes]] = {}
        for _ in range(count):
            (n,) = _U16.unpack_from(data, pos)
            pos += 2
            name = data[pos : pos + n].decode()
            pos += n
            (version,) = _U32.unpack_from(data, pos)
            (n,) = _U32.unpack_from(data, pos + 4)
            pos += 8
            rules[name] = (version, data[pos : pos + n])
            pos += n
    except (struct.error, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateCodecError(f"truncated or corrupt key state: {exc}") from None
    if pos != len(data):
        raise StateCodecError(f"key state has {len(data) - pos} trailing bytes")
    return KeyState(rules=rules, context=context)
