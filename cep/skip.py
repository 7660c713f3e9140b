"""After-match skip strategies (Flink's ``AfterMatchSkipStrategy``).

After a match is emitted, a strategy discards partial matches (and held-back completed
matches) that started too early: ``no_skip`` keeps all, ``skip_to_next`` drops those starting
at or before the match's first event, ``skip_past_last_event`` those starting at or before its
last event, ``skip_to_first(s)``/``skip_to_last(s)`` those starting before the first/last event
matched to stage ``s``. Event ids compare as ``(timestamp, arrival sequence)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from cep.errors import SkipError

EventId = tuple[int, int]  # (timestamp, sequence)


class SkipStrategy(ABC):
    """Base strategy; build one with the static constructors."""

    kind = "no_skip"
    pattern_name: str | None = None

    # constructors -------------------------------------------------------------------------
    @staticmethod
    def no_skip() -> SkipStrategy:
        return NoSkip()

    @staticmethod
    def skip_to_next() -> SkipStrategy:
        return SkipToNext()

    @staticmethod
    def skip_past_last_event() -> SkipStrategy:
        return SkipPastLastEvent()

    @staticmethod
    def skip_to_first(name: str) -> SkipToElement:
        return SkipToElement("skip_to_first", name)

    @staticmethod
    def skip_to_last(name: str) -> SkipToElement:
        return SkipToElement("skip_to_last", name)

    # behaviour ----------------------------------------------------------------------------
    @property
    def is_skip_strategy(self) -> bool:
        """False only for ``no_skip``: matches are then emitted at once, never held back."""
        return True

    @abstractmethod
    def pruning_id(self, matches: list[dict[str, list[EventId]]]) -> EventId | None:
        """The event id before or at which partial matches are discarded (None: keep all)."""

    @abstractmethod
    def should_prune(self, start: EventId, pruning: EventId) -> bool:
        """Whether a partial match starting at ``start`` is discarded given ``pruning``."""

    def prune(
        self,
        states: list[Any],
        matches: list[dict[str, list[EventId]]],
        start_id: Callable[[Any], EventId | None],
        release: Callable[[Any], None],
    ) -> list[Any]:
        """Return ``states`` without those this strategy discards (each passed to ``release``)."""
        pruning = self.pruning_id(matches)
        if pruning is None:
            return states
        kept = []
        for s in states:
            sid = start_id(s)
            if sid is not None and self.should_prune(sid, pruning):
                release(s)
            else:
                kept.append(s)
        return kept

    def to_spec(self) -> Any:
        """Plain value for rules/serialisation: a name or ``{kind: stage}``."""
        return self.kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SkipStrategy) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(str(self.to_spec()))

    def __repr__(self) -> str:
        return f"SkipStrategy.{self.kind}({self.pattern_name or ''})"


def _all_ids(matches: Iterable[dict[str, list[EventId]]]) -> Iterable[EventId]:
    for m in matches:
        for ids in m.values():
            yield from ids


class NoSkip(SkipStrategy):
    kind = "no_skip"

    @property
    def is_skip_strategy(self) -> bool:
        return False

    def pruning_id(self, matches: list[dict[str, list[EventId]]]) -> EventId | None:
        return None

    def should_prune(self, start: EventId, pruning: EventId) -> bool:
        return False


class SkipToNext(SkipStrategy):
    kind = "skip_to_next"

    def pruning_id(self, matches: list[dict[str, list[EventId]]]) -> EventId | None:
        return min(_all_ids(matches), default=None)

    def should_prune(self, start: EventId, pruning: EventId) -> bool:
        return start <= pruning


class SkipPastLastEvent(SkipStrategy):
    kind = "skip_past_last_event"

    def pruning_id(self, matches: list[dict[str, list[EventId]]]) -> EventId | None:
        return max(_all_ids(matches), default=None)

    def should_prune(self, start: EventId, pruning: EventId) -> bool:
        return start <= pruning


class SkipToElement(SkipStrategy):
    """``skip_to_first(name)`` / ``skip_to_last(name)``."""

    def __init__(self, kind: str, name: str, throw_on_miss: bool = False) -> None:
        self.kind = kind
        self.pattern_name = name
        self.throw_on_miss = throw_on_miss

    def throw_exception_on_miss(self) -> SkipToElement:
        """Raise :class:`SkipError` when a match holds no event for the stage (Flink's option)."""
        return SkipToElement(self.kind, self.pattern_name or "", True)

    def pruning_id(self, matches: list[dict[str, list[EventId]]]) -> EventId | None:
        pruning: EventId | None = None
        for m in matches:
            ids = m.get(self.pattern_name or "")
            if not ids:
                if self.throw_on_miss:
                    raise SkipError(
                        f"Could not skip to {self.pattern_name}. No such element in the found match {m}"
                    )
            else:
                eid = ids[0] if self.kind == "skip_to_first" else ids[-1]
                if pruning is None or eid > pruning:
                    pruning = eid
            if self.throw_on_miss:
                first = min((i for seq in m.values() for i in seq), default=None)
                if first is None:
                    raise SkipError("Cannot prune based on empty match")
                if pruning is not None and pruning == first:
                    raise SkipError("Could not skip to first element of a match.")
        return pruning

    def should_prune(self, start: EventId, pruning: EventId) -> bool:
        return start < pruning

    def to_spec(self) -> Any:
        spec: dict[str, Any] = {self.kind: self.pattern_name}
        if self.throw_on_miss:
            spec["throw_on_miss"] = True
        return spec


def from_spec(spec: Any) -> SkipStrategy:
    """Inverse of ``to_spec``: ``"no_skip"`` or ``{"skip_to_first": "a"}``."""
    if isinstance(spec, str):
        simple = {
            "no_skip": no_skip,
            "skip_to_next": skip_to_next,
            "skip_past_last_event": skip_past_last_event,
        }
        if spec in simple:
            return simple[spec]()
    if isinstance(spec, dict):
        for kind in ("skip_to_first", "skip_to_last"):
            if kind in spec:
                s = SkipToElement(kind, spec[kind], bool(spec.get("throw_on_miss")))
                return s
    raise ValueError(f"unknown skip strategy {spec!r}")


no_skip = SkipStrategy.no_skip
skip_to_next = SkipStrategy.skip_to_next
skip_past_last_event = SkipStrategy.skip_past_last_event
skip_to_first = SkipStrategy.skip_to_first
skip_to_last = SkipStrategy.skip_to_last
