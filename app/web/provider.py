"""The contract between the web view and the runtime.

The web view never touches Faust tables: everything it shows comes from a
:class:`StateProvider`, which the runtime implements (see docs/design.md,
"Runtime ↔ web contract"). Shapes of the returned dicts are documented in the
OpenAPI document (:mod:`app.web.openapi`); keys marked optional there may be
left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

__all__ = ["StateProvider"]


@runtime_checkable
class StateProvider(Protocol):
    """What the runtime exposes to the HTTP API and the dashboard."""

    def ready(self) -> tuple[bool, str]:
        """``(True, "")`` once tables are recovered and partitions assigned, else ``(False, why)``."""
        ...

    def key_table_name(self) -> str:
        """Name of the table whose partitioning owns an entity key (used to route key lookups).

        Its keys must be the entity key as ``str``, partitioned like the keyed topic.
        """
        ...

    async def key_state(self, key: str) -> dict[str, Any] | None:
        """Local lookup on the owning worker, or ``None`` when the key is unknown.

        ``{"key": str, "rules": {rule: {"partial_matches": [{"stage", "events",
        "expires_at", ...}], ...}}, "context": {...}, "recent": [CloudEvent, ...]}``
        """
        ...

    def rules(self) -> list[dict[str, Any]]:
        """Active rules: ``{"name", "version", "source", "counts": {"events", "matches",
        "timeouts", "late"}, "last_error"}`` (``last_error`` is ``None`` or a string)."""
        ...

    def recent_detections(
        self, rule: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Most recent detections first, as CloudEvents dicts, filtered by rule and kind."""
        ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Live detections (CloudEvents dicts) from now on; one iterator per subscriber."""
        ...

    async def apply_rule(self, text: str, filename: str) -> dict[str, Any]:
        """Validate and publish a rule file; return the applied rule (``name``, ``version``, ...).

        Raises ``cep.rules.RuleValidationError`` when the file is not a valid rule.
        """
        ...

    async def delete_rule(self, name: str) -> bool:
        """Retire a rule; ``False`` when no rule has that name."""
        ...
