"""The shared event buffer (Flink's ``SharedBuffer``), stored inside a key's :class:`NFAState`.

Every event taken by a partial match is stored once in ``events`` (``seq -> [event, ts, refs]``)
however many partial matches hold it. A *node* ``(seq, stage)`` is "this event matched this
stage"; its edges point to the previous node of each run through it, labelled with the run's
Dewey version, so a match is read back by walking edges whose version is compatible. Nodes,
edges and events are reference counted exactly as in Flink, and removed when the count drops
to zero, so expired, discarded or emitted runs free their events at once.

Layout (plain lists for speed and compact serialisation):

* ``nodes[(seq, stage)] = [refs, [[target_node_or_None, version_tuple, refs], ...]]``
* Dewey versions are tuples of ints.
"""

from __future__ import annotations

from typing import Any

NodeId = tuple[int, str]
Version = tuple[int, ...]


def compatible(a: Version, b: Version) -> bool:
    """``a.isCompatibleWith(b)`` of Flink's ``DeweyNumber``."""
    la, lb = len(a), len(b)
    if la > lb:
        return a[:lb] == b
    if la == lb:
        return a[:-1] == b[:-1] and a[-1] >= b[-1]
    return False


class SharedBuffer:
    """Operations on the ``nodes``/``events`` dicts of one key's state (its base class)."""

    __slots__ = ("events", "nodes")

    nodes: dict[NodeId, list[Any]]
    events: dict[int, list[Any]]

    def put(
        self,
        stage: str,
        seq: int,
        event: Any,
        ts: int,
        previous: NodeId | None,
        version: Version,
    ) -> NodeId:
        if previous is not None:
            self.lock_node(previous, version)
        key = (seq, stage)
        node = self.nodes.get(key)
        if node is None:
            node = [0, []]
            self.nodes[key] = node
            ev = self.events.get(seq)
            if ev is None:
                self.events[seq] = [event, ts, 1]
            else:
                ev[2] += 1
        node[1].append([previous, version, 0])
        return key

    def lock_node(self, key: NodeId, version: Version) -> None:
        node = self.nodes.get(key)
        if node is None:
            return
        node[0] += 1
        lv = len(version)
        for edge in node[1]:
            ev = edge[1]
            # ``ev == version or compatible(version, ev)``, inlined (hot)
            if ev == version:
                edge[2] += 1
                continue
            le = len(ev)
            if lv > le:
                if version[:le] == ev:
                    edge[2] += 1
            elif lv == le and version[-1] >= ev[-1] and version[:-1] == ev[:-1]:
                edge[2] += 1

    def release_node(self, key: NodeId | None, version: Version) -> None:
        if key is None:
            return
        nodes = self.nodes
        stack: list[tuple[NodeId, Version]] = [(key, version)]
        while stack:
            cur, ver = stack.pop()
            node = nodes.get(cur)
            if node is None:
                break  # as Flink: stop at the first missing node
            edges = node[1]
            kept = []
            lv = len(ver)
            for edge in edges:
                ev = edge[1]
                le = len(ev)
                # ``ev == ver or compatible(ver, ev)``, inlined (hot)
                if (
                    ev == ver
                    or (lv > le and ver[:le] == ev)
                    or (lv == le and ver[-1] >= ev[-1] and ver[:-1] == ev[:-1])
                ):
                    if edge[2] <= 0:
                        released = True
                    else:
                        edge[2] -= 1
                        released = edge[2] == 0
                    if released:
                        if edge[0] is not None:
                            stack.append((edge[0], edge[1]))
                        continue
                kept.append(edge)
            if len(kept) != len(edges):
                node[1] = kept
            if node[0] <= 0:
                node_released = True
            else:
                node[0] -= 1
                node_released = node[0] == 0
            if node_released:
                del nodes[cur]
                ev = self.events.get(cur[0])
                if ev is not None:
                    ev[2] -= 1
                    if ev[2] <= 0:
                        del self.events[cur[0]]

    def extract(self, key: NodeId | None, version: Version) -> list[dict[str, list[int]]]:
        """All event paths ending at ``key`` compatible with ``version``: stage -> [seq]."""
        result: list[dict[str, list[int]]] = []
        if key is None:
            return result
        nodes = self.nodes
        if key not in nodes:
            return result
        stack: list[tuple[NodeId | None, Version, list[NodeId]]] = [(key, version, [])]
        while stack:
            cur, ver, path = stack.pop()
            if cur is None:
                complete: dict[str, list[int]] = {}
                for seq, stage in reversed(path):
                    lst = complete.get(stage)
                    if lst is None:
                        complete[stage] = [seq]
                    else:
                        lst.append(seq)
                result.append(complete)
                continue
            path.append(cur)
            first = True
            for target, ever, _refs in nodes[cur][1]:
                if ever == ver or compatible(ver, ever):
                    if first:
                        new_path = path
                        first = False
                    else:
                        new_path = list(path)
                    stack.append((target, ever, new_path))
        return result

    def pop_run(
        self, key: NodeId | None, version: Version
    ) -> tuple[dict[str, list[Any]], int, int]:
        """The run's events (its first path) and release it: :meth:`pop_private` when the run
        shares nothing, else ``extract`` + ``materialize`` + ``release_node``;
        ``({}, -1, -1)`` when no path is left."""
        got = self.pop_private(key, version)
        if got is None:
            paths = self.extract(key, version)
            got = self.materialize(paths[0]) if paths else ({}, -1, -1)
            self.release_node(key, version)
        return got

    def pop_private(
        self, key: NodeId | None, version: Version
    ) -> tuple[dict[str, list[Any]], int, int] | None:
        """``materialize(extract(key, version)[0])`` then ``release_node(key, version)``, in
        one walk, for a run that shares nothing: every node on its path has one reference and
        one edge, that edge one reference and a compatible version. Returns None (and changes
        nothing) for any other run; use the three general operations then.

        For such a chain ``extract`` finds exactly that one path and ``release_node`` frees
        every node of it (each count drops to zero), so the result and the buffer afterwards
        are the same as the general operations'.
        """
        if key is None:
            return None
        nodes = self.nodes
        chain: list[NodeId] = []
        cur: NodeId | None = key
        ver = version
        while cur is not None:
            node = nodes.get(cur)
            if node is None or node[0] != 1:
                return None
            edges = node[1]
            if len(edges) != 1:
                return None
            edge = edges[0]
            ev = edge[1]
            if edge[2] != 1 or not (ev == ver or compatible(ver, ev)):
                return None
            chain.append(cur)
            cur = edge[0]
            ver = ev
        events = self.events
        out: dict[str, list[Any]] = {}
        lo: int | None = None
        hi: int | None = None
        for i in range(len(chain) - 1, -1, -1):
            k = chain[i]
            del nodes[k]
            seq = k[0]
            entry = events[seq]
            t = entry[1]
            if lo is None or t < lo:
                lo = t
            if hi is None or t > hi:
                hi = t
            lst = out.get(k[1])
            if lst is None:
                out[k[1]] = [entry[0]]
            else:
                lst.append(entry[0])
            entry[2] -= 1
            if entry[2] <= 0:
                del events[seq]
        return out, (lo if lo is not None else -1), (hi if hi is not None else -1)

    def materialize(self, path: dict[str, list[int]]) -> tuple[dict[str, list[Any]], int, int]:
        """Events of a path, and the timestamps of its first and last event."""
        events = self.events
        out: dict[str, list[Any]] = {}
        lo: int | None = None
        hi: int | None = None
        for stage, seqs in path.items():
            lst = []
            for s in seqs:
                ev = events[s]
                lst.append(ev[0])
                t = ev[1]
                if lo is None or t < lo:
                    lo = t
                if hi is None or t > hi:
                    hi = t
            out[stage] = lst
        return out, (lo if lo is not None else -1), (hi if hi is not None else -1)
