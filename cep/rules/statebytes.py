"""A rule's state bytes, written again and again: what did not change is not encoded again.

The runtime writes a key's state at every flush that follows an event of the key. With event
time most of a state is its out-of-order buffer (``max_out_of_orderness`` of the key's
events), and most of its engine part is idle (the start run only); both change little between
two flushes. :class:`StateEncoder` gives exactly the bytes of :func:`cep.serde.dump_state`
(format version 1) but

* encodes each buffered entry once: the buffer (:class:`cep.eventtime.Buffer`) keeps the
  bytes of the entries already encoded, and the processor keeps them in step as entries come
  and go, so a flush encodes only the entries that arrived since the previous one;
* for a state whose engine part is the start run alone (no partial match, nothing held back
  or pending), keeps the bytes around the buffer and its three counters (``a``/``w``/``m``)
  per (start run, sequence number, dropped count), so such a state is one bytes format of
  cached pieces.

Any other state, or an event orjson cannot encode, takes :func:`cep.serde.dump_state` itself.
"""

from __future__ import annotations

from typing import Any

import orjson

from cep.eventtime import Buffer, new_buffer
from cep.serde import dump_state, state_to_doc
from cep.state import NFAState

__all__ = ["StateEncoder"]

_dumps = orjson.dumps
_Fragment = orjson.Fragment
#: Stand-ins for the buffer and its counters while a template is made: control bytes never
#: appear in orjson's output (strings escape them), so each is found exactly once.
_MARKS = (b"\x00", b"\x01", b"\x02", b"\x03")
_STANDS_IN = (b"[\x00]", b"\x01", b"\x02", b"\x03")  # the buffer's brackets go to the template
_TEMPLATES_MAX = 1024
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class StateEncoder:
    """``encode(state)``: ``cep.serde.dump_state(nfa, state)``, reusing earlier work."""

    def __init__(self, nfa: Any) -> None:
        self.nfa = nfa
        # (start run, seq, dropped) -> the bytes before "o", between "o" and "a", "a" and
        # "w", "w" and "m", after "m"; None when this state's doc cannot be cut that way
        self._templates: dict[tuple[Any, ...], tuple[bytes, ...] | None] = {}

    def encode(self, state: NFAState) -> bytes:
        early = state.early
        if not early:
            return dump_state(self.nfa, state)
        try:
            buffered = _buffer_text(state)
        except TypeError:
            return dump_state(self.nfa, state)  # raises StateFormatError with the reason
        partial = state.partial
        if (
            len(partial) == 1
            and not state.events
            and not state.nodes
            and not state.completed
            and not state.pending_timeouts
        ):
            key = (partial[0], state.seq, state.dropped_partial_matches)
            cut = self._templates.get(key, False)
            if cut is False:
                cut = self._template(state, key)
            if cut is not None:
                a, w, m = state.arrivals, state.watermark, state.max_ts
                if (
                    type(a) is int
                    and type(w) is int
                    and type(m) is int
                    and _I64_MIN <= w <= _I64_MAX
                    and _I64_MIN <= m <= _I64_MAX
                ):  # as orjson writes them (it refuses ints beyond 64 bits)
                    return b"%b%b%b%d%b%d%b%d%b" % (
                        cut[0],
                        buffered,
                        cut[1],
                        a,
                        cut[2],
                        w,
                        cut[3],
                        m,
                        cut[4],
                    )
                try:
                    return b"".join(
                        (
                            cut[0],
                            buffered,
                            cut[1],
                            _dumps(a),
                            cut[2],
                            _dumps(w),  # -inf: null, as the doc's None
                            cut[3],
                            _dumps(m),
                            cut[4],
                        )
                    )
                except TypeError:
                    return dump_state(self.nfa, state)  # raises StateFormatError
        doc = state_to_doc(self.nfa, state)
        if "o" not in doc:
            return dump_state(self.nfa, state)
        doc["o"] = _Fragment(b"[%b]" % buffered)
        try:
            return _dumps(doc)
        except TypeError:
            return dump_state(self.nfa, state)  # raises StateFormatError

    def _template(self, state: NFAState, key: tuple[Any, ...]) -> tuple[bytes, ...] | None:
        doc = state_to_doc(self.nfa, state)
        cut: tuple[bytes, ...] | None = None
        if "o" in doc and "a" in doc and "w" in doc and "m" in doc:
            for name, mark in zip("oawm", _STANDS_IN, strict=True):
                doc[name] = _Fragment(mark)
            raw = _dumps(doc)
            at = [raw.find(mark) for mark in _MARKS]
            if all(raw.count(mark) == 1 for mark in _MARKS) and at == sorted(at):
                ends = [0, *(i + 1 for i in at)]
                cut = tuple(raw[a:b] for a, b in zip(ends, [*at, len(raw)], strict=True))
        if len(self._templates) >= _TEMPLATES_MAX:
            self._templates.clear()
        self._templates[key] = cut
        return cut


def _buffer_text(state: NFAState) -> bytes:
    """``orjson.dumps(list(state.early))`` without its brackets, encoding only the entries
    not encoded before (a buffer loaded from bytes becomes a :class:`Buffer` here)."""
    early = state.early
    if type(early) is not Buffer:
        early = state.early = new_buffer(early)
    return early.joined(_dumps)
