"""The compiled state graph: states, transitions and their actions (Flink's ``State``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cep.conditions import Cond

TAKE, IGNORE, PROCEED = 0, 1, 2
ACTION_NAMES = ("TAKE", "IGNORE", "PROCEED")

START, NORMAL, FINAL, STOP, PENDING = "Start", "Normal", "Final", "Stop", "Pending"


@dataclass(eq=False)
class Transition:
    action: int
    source: State
    target: State
    cond: Cond

    def __repr__(self) -> str:
        return f"{ACTION_NAMES[self.action]}({self.source.name} -> {self.target.name})"


@dataclass(eq=False)
class State:
    """One NFA state. ``name`` is unique inside the NFA; ``stage`` is the user's stage name."""

    name: str
    stage: str
    type: str
    transitions: list[Transition] = field(default_factory=list)

    def add(self, action: int, target: State, cond: Cond) -> None:
        self.transitions.append(Transition(action, self, target, cond))

    def add_take(self, target: State, cond: Cond) -> None:
        self.add(TAKE, target, cond)

    def add_take_self(self, cond: Cond) -> None:
        self.add(TAKE, self, cond)

    def add_ignore(self, target: State, cond: Cond) -> None:
        self.add(IGNORE, target, cond)

    def add_ignore_self(self, cond: Cond) -> None:
        self.add(IGNORE, self, cond)

    def add_proceed(self, target: State, cond: Cond) -> None:
        self.add(PROCEED, target, cond)

    @property
    def is_final(self) -> bool:
        return self.type == FINAL

    @property
    def is_start(self) -> bool:
        return self.type == START

    @property
    def is_stop(self) -> bool:
        return self.type == STOP

    @property
    def is_pending(self) -> bool:
        return self.type == PENDING

    def __repr__(self) -> str:
        return f"State({self.name!r}, {self.type}, {self.transitions})"
