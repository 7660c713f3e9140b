"""Errors of the rules layer.

::

    RuleError                   root of everything raised by cep.rules
    ├── RuleValidationError     one or more files are invalid; .errors lists every RuleIssue
    └── EventError              an event cannot be used by a rule (no key, bad time field)
"""

from __future__ import annotations

from dataclasses import dataclass


class RuleError(Exception):
    """Root of the errors raised by :mod:`cep.rules`."""


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """One validation problem: where it is, what is wrong and what would be right."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path or '<document>'}: {self.message}"


class RuleValidationError(RuleError):
    """Raised with every issue found; nothing of an invalid file is loaded."""

    def __init__(self, errors: list[RuleIssue]) -> None:
        self.errors = list(errors)
        head = f"{len(self.errors)} error(s) in rules"
        super().__init__(head + "\n" + "\n".join(str(e) for e in self.errors))


class EventError(RuleError):
    """An event that a rule cannot use (the message names the rule and the field).

    ``code`` is stable, for DLQ headers: missing-key, invalid-key, missing-time,
    invalid-time, not-an-object.
    """

    def __init__(self, message: str, code: str = "unusable") -> None:
        super().__init__(message)
        self.code = code


class Reason(str):
    """A problem text (``str``) that also carries its stable ``code``."""

    code: str

    def __new__(cls, text: str, code: str) -> Reason:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj
