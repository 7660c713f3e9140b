"""Kairos pattern engine: Flink CEP semantics in pure Python.

Build a :class:`Pattern`, compile it with :func:`compile_pattern` into an immutable NFA, and
drive it per key with ``nfa.process(state, event, ts)`` and ``nfa.advance_time(state, ts)``.
"""

from cep.compiler import compile_pattern
from cep.errors import CepError, MalformedPatternError, SkipError, StateFormatError
from cep.eventtime import EventTimeProcessor, Output
from cep.keyed import KeyedRunner
from cep.match import ConditionContext, Match, Timeout
from cep.nfa import NFA
from cep.pattern import Pattern, WithinType
from cep.patternset import PatternSet
from cep.skip import SkipStrategy
from cep.state import NFAState

__all__ = [
    "NFA",
    "CepError",
    "ConditionContext",
    "EventTimeProcessor",
    "KeyedRunner",
    "MalformedPatternError",
    "Match",
    "NFAState",
    "Output",
    "Pattern",
    "PatternSet",
    "SkipError",
    "SkipStrategy",
    "StateFormatError",
    "Timeout",
    "WithinType",
    "compile_pattern",
]
