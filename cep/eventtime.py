"""Event time: a per-key out-of-order buffer in front of the NFA (Flink's ``CepOperator``).

Events wait in the key's state until the watermark passes them, then go to the NFA in
timestamp order (arrival order among equal timestamps), each preceded by ``advance_time`` to
its timestamp, as Flink does; then time advances to the watermark itself.

Watermark ``W`` here means "no event with a timestamp below ``W`` is still to come": events with
``ts < W`` are *late* and returned in ``Output.late`` (never dropped); buffered events with
``ts <= W`` are released. Unless the caller supplies one, ``W = max timestamp seen for the key −
max_out_of_orderness``. (Flink's bounded-out-of-orderness watermark is this ``W − 1``.)

In processing-time mode events go straight through and ``on_watermark`` is a timer tick.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cep.match import Match, Timeout
from cep.nfa import NFA
from cep.pattern import to_millis
from cep.state import _NEVER, NFAState


class Buffer(list):  # type: ignore[type-arg]
    """A state's out-of-order buffer: its entries ``[ts, arrival, event]`` in (ts, arrival)
    order, as a list (the state format stores it as one), that remembers the JSON bytes of
    the entries it already encoded (:meth:`joined`), so a state written at every flush encodes
    each entry once. Change it only through :class:`EventTimeProcessor` (which tells it about
    entries inserted before the encoded ones, :meth:`forget_from`, and entries released,
    ``gone``); its events must not change while they are buffered."""

    __slots__ = ("gone", "sizes", "text")

    #: ``text`` is ``b",".join`` of the encoded bytes of the first ``len(sizes)`` entries of
    #: (the ``gone`` entries released since, then the buffer); ``sizes`` their lengths
    gone: int
    sizes: list[int]
    text: bytes

    def forget_from(self, index: int) -> None:
        """Entry ``index`` and those after it are no longer what was encoded."""
        keep = self.gone + index
        sizes = self.sizes
        if keep < len(sizes):
            self.text = self.text[: sum(sizes[:keep]) + keep - 1] if keep else b""
            del sizes[keep:]

    def joined(self, encode: Callable[[Any], bytes]) -> bytes:
        """``b",".join(map(encode, self))``, calling ``encode`` only for the entries not
        encoded before (``encode`` must give the same bytes for the same entry)."""
        sizes = self.sizes
        gone = self.gone
        if gone:
            self.gone = 0
            if gone >= len(sizes):
                self.text = b""
                sizes.clear()
            else:
                self.text = self.text[sum(sizes[:gone]) + gone :]
                del sizes[:gone]
        done = len(sizes)
        size = len(self)
        if done + 1 == size:  # one entry since the last time: the usual case
            raw = encode(self[done])
            sizes.append(len(raw))
            self.text = b"%b,%b" % (self.text, raw) if done else raw
        elif done < size:
            new = list(map(encode, self[done:]))
            sizes += map(len, new)
            if done:
                new.insert(0, self.text)
            self.text = b",".join(new)
        return self.text


def new_buffer(entries: Any = ()) -> Buffer:
    """A :class:`Buffer` of ``entries``, none encoded yet."""
    buf = Buffer(entries)
    buf.gone = 0
    buf.sizes = []
    buf.text = b""
    return buf


def _order(entry: list[Any]) -> tuple[Any, Any]:
    return entry[0], entry[1]


@dataclass(slots=True)
class Output:
    """What one call produced: completed matches, timed-out partial matches, late events."""

    matches: list[Match] = field(default_factory=list)
    timeouts: list[Timeout] = field(default_factory=list)
    late: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.matches or self.timeouts or self.late)


class EventTimeProcessor:
    """Wraps an NFA (or anything with ``process``/``advance_time``/``new_state``)."""

    def __init__(
        self, nfa: Any, max_out_of_orderness: Any = 0, *, processing_time: bool = False
    ) -> None:
        self.nfa = nfa
        self.max_out_of_orderness = to_millis(max_out_of_orderness)
        if self.max_out_of_orderness < 0:
            raise ValueError("max_out_of_orderness must be >= 0 milliseconds")
        self.processing_time = processing_time
        # an NFA's state says when ``advance_time`` has nothing to do (before its deadline,
        # no kept timeouts): then the call is skipped; other engines are always asked
        self._knows_deadline = isinstance(nfa, NFA)

    def new_state(self) -> NFAState:
        return self.nfa.new_state()

    def on_event(
        self, state: NFAState, event: Any, timestamp: int, watermark: int | None = None
    ) -> Output:
        """Buffer (or, in processing time, process) one event; release what the watermark passed."""
        out = Output()
        if self.feed(state, event, timestamp, watermark, out.matches, out.timeouts):
            out.late.append(event)
        return out

    def on_watermark(self, state: NFAState, watermark: int) -> Output:
        """Advance the key to ``watermark`` (processing-time mode: the current time)."""
        out = Output()
        self.release(state, watermark, out.matches, out.timeouts)
        return out

    def feed(
        self,
        state: NFAState,
        event: Any,
        timestamp: int,
        watermark: int | None,
        matches: list[Match],
        timeouts: list[Timeout],
    ) -> bool:
        """:meth:`on_event` appending to the caller's lists; True when the event is late."""
        if self.processing_time:
            self._step(state, event, timestamp, matches, timeouts)
            return False
        if not state.early and timestamp >= state.watermark:
            # nothing buffered: if the new watermark already passes this event, skip the buffer
            max_ts = timestamp if timestamp > state.max_ts else state.max_ts
            wm = watermark if watermark is not None else max_ts - self.max_out_of_orderness
            if timestamp <= wm and wm >= state.watermark:
                state.max_ts = max_ts
                state.arrivals += 1
                state.watermark = wm
                self._step(state, event, timestamp, matches, timeouts)
                self._time(state, wm, matches, timeouts)
                return False
        late = timestamp < state.watermark
        if not late:
            arrival = state.arrivals
            item = [timestamp, arrival, event]
            state.arrivals = arrival + 1
            early = state.early
            if not early:
                early = state.early = new_buffer()
                early.append(item)
            elif early[-1][0] <= timestamp:
                early.append(item)
            else:
                at = bisect.bisect_right(early, (timestamp, arrival), key=_order)
                early.insert(at, item)
                if type(early) is Buffer:
                    early.forget_from(at)  # the entries after it moved
            if timestamp > state.max_ts:
                state.max_ts = timestamp
        wm = watermark if watermark is not None else state.max_ts - self.max_out_of_orderness
        if wm >= state.watermark:
            early = state.early
            if (
                not self._knows_deadline
                or (early and early[0][0] <= wm)
                or wm >= state.deadline
                or state.pending_timeouts
            ):
                self._advance_to(state, wm, matches, timeouts)
            else:  # nothing to release, no time to advance: all ``_advance_to`` would do
                state.watermark = wm
        return late

    def release(
        self, state: NFAState, watermark: int, matches: list[Match], timeouts: list[Timeout]
    ) -> None:
        """:meth:`on_watermark` appending to the caller's lists."""
        if self.processing_time:
            self._time(state, watermark, matches, timeouts)
        elif watermark >= state.watermark:
            self._advance_to(state, watermark, matches, timeouts)

    def next_deadline(self, state: NFAState) -> float | None:
        """Earliest watermark at which ``on_watermark`` can produce output, or None."""
        if self._knows_deadline:
            # ``NFA.next_deadline``, inlined
            pending = state.pending_timeouts
            d = min(t.timestamp for t in pending) if pending else state.deadline
            early = state.early
            if early:
                first = early[0][0]
                if first < d:
                    d = first
            return None if d == _NEVER else d
        d = self.nfa.next_deadline(state)
        if state.early:
            first = state.early[0][0]
            d = first if d is None else min(d, first)
        return d

    def _advance_to(
        self, state: NFAState, wm: float, matches: list[Match], timeouts: list[Timeout]
    ) -> None:
        state.watermark = wm
        early = state.early
        if early and early[0][0] <= wm:
            n = 1
            size = len(early)
            while n < size and early[n][0] <= wm:
                n += 1
            if n < size:
                ready = early[:n]
                del early[:n]
                if type(early) is Buffer:
                    early.gone += n
            else:
                ready = early
                state.early = ()
            step = self._step
            for ts, _arrival, event in ready:
                step(state, event, ts, matches, timeouts)
        self._time(state, wm, matches, timeouts)

    def _time(
        self, state: NFAState, ts: float, matches: list[Match], timeouts: list[Timeout]
    ) -> None:
        """``advance_time(ts)`` unless the state says it has nothing to do."""
        if self._knows_deadline and ts < state.deadline and not state.pending_timeouts:
            return
        t, m = self.nfa.advance_time(state, ts)
        if t:
            timeouts.extend(t)
        if m:
            matches.extend(m)

    def _step(
        self, state: NFAState, event: Any, ts: int, matches: list[Match], timeouts: list[Timeout]
    ) -> None:
        self._time(state, ts, matches, timeouts)
        m = self.nfa.process(state, event, ts)
        if m:
            matches.extend(m)
