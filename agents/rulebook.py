"""The rules a worker runs, swapped as a whole when one of them changes.

Every worker reads the whole compacted rules topic and feeds each record to
:meth:`RuleBook.apply` (or :meth:`RuleBook.delete` for a tombstone). A valid version replaces
the running one by building a new :class:`~cep.rules.RuleRunner` over the new set: the ingest
and detect loops pick up ``book.runner`` at their next batch, so a swap never happens halfway
through a batch. An invalid version is rejected with its validation errors and the running
version stays.

Partial matches of a replaced version are dropped: each key's state is tagged with the
version that wrote it, and detect starts a fresh state when the tag differs (counted in
``replaced_states``). A rule's conditions may change arbitrarily between versions, so carrying
old partial matches over could emit matches that neither version would produce.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cep.rules import RuleRunner, RuleValidationError, load_rules_text

__all__ = ["RuleBook", "RuleStatus"]

log = logging.getLogger("kairos.rules")


@dataclass
class RuleStatus:
    """This worker's verdict on the latest version of a rule it received."""

    name: str
    version: int | None
    ok: bool
    errors: list[str] = field(default_factory=list)
    filename: str = ""
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": "applied" if self.ok else "rejected",
            "errors": self.errors,
            "filename": self.filename,
            "at": int(self.at * 1000),
        }


class RuleBook:
    """Active rules by name, their runner, and the last verdict per name."""

    def __init__(self) -> None:
        self.rules: dict[str, Any] = {}
        self.texts: dict[str, tuple[str, str]] = {}
        self.status: dict[str, RuleStatus] = {}
        self.runner: RuleRunner = RuleRunner([])
        self.generation = 0
        self._listeners: list[Callable[[RuleBook], None]] = []

    def on_change(self, listener: Callable[[RuleBook], None]) -> None:
        """Call ``listener(book)`` after every successful swap."""
        self._listeners.append(listener)

    def sources(self) -> set[str]:
        """Topics the active rules read: event sources and context sources."""
        events = {topic for rule in self.rules.values() for topic in rule.source}
        return events | set(self.runner.context_topics())

    def apply(self, name: str, text: str, filename: str = "") -> RuleStatus:
        """Validate ``text`` (one rule named ``name``) and swap it in when valid."""
        label = filename or f"rules-topic:{name}"
        try:
            parsed = load_rules_text(text, label)
            if len(parsed) != 1 or parsed[0].name != name:
                got = ", ".join(r.name for r in parsed) or "no rule"
                raise _Mismatch(f"{label}: record key is {name!r} but the document holds {got}")
            rule = parsed[0]
            runner = RuleRunner([*(r for n, r in self.rules.items() if n != name), rule])
        except RuleValidationError as exc:
            return self._reject(name, _version_of(text), [str(e) for e in exc.errors], label)
        except _Mismatch as exc:
            return self._reject(name, None, [str(exc)], label)
        except Exception as exc:  # a rule must never take the worker down
            return self._reject(name, _version_of(text), [f"{label}: {exc}"], label)
        current = self.rules.get(name)
        if current is not None and current.version == rule.version and current.text != rule.text:
            return self._reject(
                name,
                rule.version,
                [
                    f"{label}: version {rule.version} is already running with a different "
                    "document; raise `version` to replace it"
                ],
                label,
            )
        if current is not None and current.version > rule.version:
            return self._reject(
                name,
                rule.version,
                [
                    f"{label}: version {rule.version} is older than the running version "
                    f"{current.version}; raise `version` to replace it"
                ],
                label,
            )
        self.rules[name] = rule
        self.texts[name] = (text, label)
        self.runner = runner
        self.generation += 1
        status = self.status[name] = RuleStatus(name, rule.version, True, filename=label)
        log.info(
            "rule applied",
            extra={
                "rule": name,
                "version": rule.version,
                "replaced": getattr(current, "version", None),
            },
        )
        self._notify()
        return status

    def delete(self, name: str) -> bool:
        """Stop running ``name``; False when it was not running."""
        if name not in self.rules:
            return False
        del self.rules[name]
        self.texts.pop(name, None)
        self.status.pop(name, None)
        self.runner = RuleRunner(list(self.rules.values()))
        self.generation += 1
        log.info("rule deleted", extra={"rule": name})
        self._notify()
        return True

    def _reject(self, name: str, version: int | None, errors: list[str], label: str) -> RuleStatus:
        status = RuleStatus(name, version, False, errors, label)
        running = self.rules.get(name)
        log.error(
            "rule rejected",
            extra={
                "rule": name,
                "version": version,
                "errors": errors,
                "running_version": getattr(running, "version", None),
            },
        )
        # The verdict on the running version stays visible; the rejection is the last error.
        self.status[name] = status if running is None else _keep_running(self.status[name], status)
        return status

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener(self)
            except Exception:
                log.exception("rule change listener failed")


class _Mismatch(Exception):
    pass


def _keep_running(running: RuleStatus, rejected: RuleStatus) -> RuleStatus:
    kept = RuleStatus(running.name, running.version, True, rejected.errors, running.filename)
    kept.at = rejected.at
    return kept


def _version_of(text: str) -> int | None:
    """Best-effort version number of a rejected document, for the status record."""
    try:
        import yaml

        doc = yaml.safe_load(text)
        version = doc.get("version") if isinstance(doc, dict) else None
        return version if isinstance(version, int) else None
    except Exception:
        return None
