"""Versioned, compact byte format of :class:`~cep.state.NFAState` (orjson).

Format version 1 (short keys; names are stored once in tables and referred to by index)::

    {"v": 1,                      # format version
     "s": [state names],          # NFA states referred to below
     "g": [stage names],          # stages (buffer pages) referred to below
     "p": [[s, node, ver, start_ts, prev_ts, start_seq], ...],   # partial matches
     "c": [...],                  # completed matches held back by the skip strategy
     "n": [[seq, g, refs, [[tseq, tg, ver, refs], ...]], ...],   # buffer nodes and edges
     "e": [[seq, ts, refs, event], ...],                         # each event stored once
     "q": next_seq, "d": dropped_partial_matches,
     "t": [[events, timestamp, start], ...],                     # timeouts not yet returned
     "o": [[ts, arrival, event], ...], "a": arrivals,            # event-time buffer (optional:
     "w": watermark, "m": max_ts}                                #  only with EventTimeProcessor)

``node`` is ``[seq, g]`` or null; ``tseq``/``tg`` are null for the first event of a run.
Loading maps state names onto the NFA, so state survives recompiling the same pattern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from cep.errors import StateFormatError
from cep.state import STATE_FORMAT_VERSION, NFAState

_INF = float("inf")

if TYPE_CHECKING:
    from cep.nfa import NFA


def dump_state(nfa: NFA, state: NFAState) -> bytes:
    """State as versioned orjson bytes."""
    doc = state_to_doc(nfa, state)
    try:
        return orjson.dumps(doc)
    except TypeError as exc:
        raise StateFormatError(
            f"state holds an event orjson cannot serialise ({exc}); events must be JSON-like values"
        ) from exc


def state_to_doc(nfa: NFA, state: NFAState) -> dict[str, Any]:
    """State as a JSON-like dict (format above)."""
    snames: dict[int, int] = {}
    stages: dict[str, int] = {}

    def s_ref(i: int) -> int:
        r = snames.get(i)
        if r is None:
            r = snames[i] = len(snames)
        return r

    def g_ref(stage: str) -> int:
        r = stages.get(stage)
        if r is None:
            r = stages[stage] = len(stages)
        return r

    def node_ref(node: Any) -> Any:
        return None if node is None else [node[0], g_ref(node[1])]

    def cs_out(cs: Any) -> list[Any]:
        return [s_ref(cs[0]), node_ref(cs[1]), list(cs[2]), cs[3], cs[4], cs[5]]

    doc = {
        "v": STATE_FORMAT_VERSION,
        "p": [cs_out(cs) for cs in state.partial],
        "c": [cs_out(cs) for cs in state.completed],
        "n": [
            [
                key[0],
                g_ref(key[1]),
                node[0],
                [[*_edge_target(e[0], g_ref), list(e[1]), e[2]] for e in node[1]],
            ]
            for key, node in state.nodes.items()
        ],
        "e": [[seq, ev[1], ev[2], ev[0]] for seq, ev in state.events.items()],
        "q": state.seq,
        "d": state.dropped_partial_matches,
        "t": [[t.events, t.timestamp, t.start] for t in state.pending_timeouts],
    }
    if state.early or state.arrivals or state.max_ts != -_INF:
        doc["o"] = list(state.early)
        doc["a"] = state.arrivals
        doc["w"] = None if state.watermark == -_INF else state.watermark
        doc["m"] = None if state.max_ts == -_INF else state.max_ts
    names = [""] * len(snames)
    for i, r in snames.items():
        names[r] = nfa.names[i]
    gl = [""] * len(stages)
    for g, r in stages.items():
        gl[r] = g
    doc["s"] = names
    doc["g"] = gl
    return doc


def _edge_target(node: Any, g_ref: Any) -> list[Any]:
    return [None, None] if node is None else [node[0], g_ref(node[1])]


def load_state(nfa: NFA, blob: bytes) -> NFAState:
    """Inverse of :func:`dump_state`."""
    try:
        doc = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"state bytes are not valid JSON: {exc}") from exc
    return state_from_doc(nfa, doc)


def state_from_doc(nfa: NFA, doc: Any) -> NFAState:
    """Inverse of :func:`state_to_doc`."""
    from cep.match import Timeout

    if not isinstance(doc, dict) or "v" not in doc:
        raise StateFormatError("state bytes carry no format version; they are not engine state")
    v = doc["v"]
    if v != STATE_FORMAT_VERSION:
        raise StateFormatError(
            f"state format version {v} is not supported by this engine "
            f"(reads {STATE_FORMAT_VERSION}); upgrade Kairos or reset this key's state"
        )
    try:
        idx = []
        for name in doc["s"]:
            if name not in nfa.index:
                raise StateFormatError(
                    f"state refers to NFA state {name!r} that this pattern does not have; "
                    "it was written for a different pattern: reset this key's state"
                )
            idx.append(nfa.index[name])
        g = doc["g"]

        def node_in(n: Any) -> Any:
            return None if n is None else (n[0], g[n[1]])

        def cs_in(x: list[Any]) -> Any:
            return (idx[x[0]], node_in(x[1]), tuple(x[2]), x[3], x[4], x[5])

        state = NFAState(nfa, [cs_in(x) for x in doc["p"]])
        state.completed = [cs_in(x) for x in doc["c"]] or ()
        for seq, gi, refs, edges in doc["n"]:
            state.nodes[(seq, g[gi])] = [
                refs,
                [[None if e[0] is None else (e[0], g[e[1]]), tuple(e[2]), e[3]] for e in edges],
            ]
        for seq, ts, refs, event in doc["e"]:
            state.events[seq] = [event, ts, refs]
        state.seq = doc["q"]
        state.dropped_partial_matches = doc["d"]
        state.pending_timeouts = [Timeout(t[0], t[1], t[2]) for t in doc["t"]] or ()
        if "o" in doc:
            state.early = [list(x) for x in doc["o"]] or ()
            state.arrivals = doc["a"]
            state.watermark = -_INF if doc["w"] is None else doc["w"]
            state.max_ts = -_INF if doc["m"] is None else doc["m"]
    except StateFormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise StateFormatError(f"state bytes are malformed: {exc!r}") from exc
    state.deadline = nfa._deadline(state.partial)
    return state
