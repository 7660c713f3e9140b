"""The runtime's side of the web contract (:class:`app.web.provider.StateProvider`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import orjson

from agents.detect import Detector
from agents.rulebook import RuleBook
from agents.rules_service import RulesService
from cep.rules import load_rules_text

__all__ = ["DetectionFeed", "RuntimeProvider"]


class DetectionFeed(Protocol):
    """Recent and live detections (:class:`agents.feed.ClusterFeed`: the whole cluster's)."""

    def query(self, rule: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]: ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...


class RuntimeProvider:
    """Answers the web view from this worker's rule book and tables (key lookups, rules)
    and from the cluster's detection feed (recent detections, the live stream)."""

    def __init__(
        self,
        book: RuleBook,
        detector: Detector,
        history: Any,
        feed: DetectionFeed,
        rules_service: RulesService,
        state_table_name: str,
        readiness: Callable[[], tuple[bool, str]],
        counts: Callable[[str], dict[str, int]],
    ) -> None:
        self.book = book
        self.detector = detector
        self.history = history
        self.feed = feed
        self.rules_service = rules_service
        self._table_name = state_table_name
        self._readiness = readiness
        self._counts = counts

    def ready(self) -> tuple[bool, str]:
        return self._readiness()

    def key_table_name(self) -> str:
        return self._table_name

    async def key_state(self, key: str) -> dict[str, Any] | None:
        stored = self.detector.stored_state(key)
        raw_history = self.history.get(key.encode())
        if stored is None and not raw_history:
            return None
        runner = self.book.runner
        describe = getattr(runner, "describe_state", None)
        rules: dict[str, Any] = {}
        for name, (version, blob) in (stored.rules if stored else {}).items():
            rule = self.book.rules.get(name)
            if rule is None:
                continue
            entry: dict[str, Any] = {"version": version, "current": version == rule.version}
            partials: list[dict[str, Any]] = []
            if describe is not None and version == rule.version:
                partials = describe(name, runner.state_from_bytes(name, blob))
            entry["partial_matches"] = partials
            rules[name] = entry
        return {
            "key": key,
            "rules": rules,
            "context": stored.context if stored else {},
            "recent": orjson.loads(raw_history) if raw_history else [],
        }

    def rules(self) -> list[dict[str, Any]]:
        out = []
        for name, rule in sorted(self.book.rules.items()):
            status = self.book.status.get(name)
            out.append(
                {
                    "name": name,
                    "version": rule.version,
                    "source": list(rule.source),
                    "description": rule.description,
                    "counts": self._counts(name),
                    "last_error": "; ".join(status.errors) if status and status.errors else None,
                }
            )
        return out

    def recent_detections(
        self, rule: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return self.feed.query(rule, kind, limit)

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        return self.feed.subscribe()

    async def apply_rule(self, text: str, filename: str) -> dict[str, Any]:
        """Publish every rule of the file (validated first: raises RuleValidationError)."""
        names = await self.rules_service.apply_text(text, filename)
        rules = {r.name: r for r in load_rules_text(text, filename)}
        first = rules[names[0]]
        return {
            "name": first.name,
            "version": first.version,
            "source": list(first.source),
            "rules": [{"name": n, "version": rules[n].version} for n in names],
        }

    async def delete_rule(self, name: str) -> bool:
        return await self.rules_service.delete(name)
