"""Errors raised by the pattern engine.

CepError                      root of every engine error
├── MalformedPatternError     invalid pattern, raised while building or compiling it
├── SkipError                 an after-match skip strategy cannot skip (only when told to raise)
└── StateFormatError          state bytes that this engine cannot load
"""

from __future__ import annotations


class CepError(Exception):
    """Root of every error raised by ``cep``."""


class MalformedPatternError(CepError):
    """The pattern is invalid; the message gives Flink's reason (``MalformedPatternException``)."""


class SkipError(CepError):
    """``skip_to_first/last(name).throw_exception_on_miss()`` found no event for ``name``."""


class StateFormatError(CepError):
    """Serialised state is corrupt, from a newer format, or from a different pattern."""
