"""Seeded simulators for the seed scenarios (flights, retail, supply), with ground truth.

>>> sim = simulate("flights", entities=50, seed=7)
>>> sim.truth.expected["rebooking-offer"][:1]
['P-00001']
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType

from app.simulate import flights, retail, supply
from app.simulate.base import MALFORMED_KINDS, Message, Plan, ScenarioSpec, Simulation, build
from app.simulate.truth import GroundTruth, Score, score

__all__ = [
    "DEFAULT_START",
    "MALFORMED_KINDS",
    "SCENARIOS",
    "GroundTruth",
    "Message",
    "Score",
    "Simulation",
    "entities_for",
    "score",
    "simulate",
    "spec",
]

SCENARIOS: dict[str, ModuleType] = {"flights": flights, "retail": retail, "supply": supply}

DEFAULT_START = int(datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp() * 1000)
"""Event time of the first story unless ``start_ms`` is given (fixed, for reproducible runs)."""


def spec(scenario: str) -> ScenarioSpec:
    return _module(scenario).SPEC  # type: ignore[no-any-return]


def entities_for(scenario: str, events: int) -> int:
    """How many entities give about ``events`` events."""
    return max(8, round(events / spec(scenario).events_per_entity))


def simulate(
    scenario: str,
    *,
    entities: int,
    seed: int = 1,
    start_ms: int = DEFAULT_START,
    late_share: float = 0.01,
    malformed_share: float = 0.005,
) -> Simulation:
    """Plan ``entities`` entities of ``scenario`` and return the stream with its ground truth."""
    module = _module(scenario)
    rng = random.Random(f"{scenario}:{seed}")
    planner: Callable[[random.Random, int, int], Plan] = module.plan
    return build(
        module.SPEC,
        planner(rng, entities, start_ms),
        rng,
        seed=seed,
        late_share=late_share,
        malformed_share=malformed_share,
    )


def _module(scenario: str) -> ModuleType:
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise ValueError(
            f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        ) from None
