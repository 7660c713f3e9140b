"""Flight disruption: passengers, delays, connections at risk, rebooking searches.

Each passenger checks in for one flight (origin hub -> connection). Stories, drawn per
passenger, decide the rule outcomes by construction (margins of 10+ minutes around every
rule boundary):

- delay: none, major (60-180 min) or minor (15-55 min);
- connection: ConnectionAtRisk 10-100 min after the delay (inside ``rebooking-offer``'s 2 h),
  140-240 min after it (outside), or none;
- rebooking behaviour of delayed passengers: no search; search 5-20 min after the delay and a
  booking 2-15 min later (before 45 min); search 5-25 min after and no booking before 55 min
  (``service-desk-alert``); search only 50-80 min after the delay (too late for the window);
- tier from the passenger-profiles context (gold ~15 %): gold + any delay -> ``lounge-voucher``.

Noise: GateChanged, CheckIn, searches and bookings of passengers whose flight is on time, and
connections at risk without a delay.
"""

from __future__ import annotations

import random

from app.simulate.base import HOUR, MINUTE, Event, EventLog, Plan, ScenarioSpec, uniform_ms

SPEC = ScenarioSpec(
    name="flights",
    topic="flight-events",
    context_topic="passenger-profiles",
    entity_field="passenger_id",
    key_fields=("passenger_id",),
    rule_keys={
        "rebooking-offer": "passenger_id",
        "service-desk-alert": "passenger_id",
        "lounge-voucher": "passenger_id",
    },
    ooo_ms=5 * MINUTE,
    longest_window_ms=2 * HOUR,
    events_per_entity=5.0,
    id_prefix="fl",
)

SPAN_MS = 18 * HOUR
HUBS = ("FRA", "AMS", "CDG", "MAD", "LHR", "ZRH", "VIE", "CPH")
DESTINATIONS = ("JFK", "SFO", "NRT", "GRU", "DXB", "SIN", "YYZ", "BOS", "ORD", "HKG")
TIERS = (("gold", 0.15), ("silver", 0.30), ("basic", 0.55))
DELAYS = ("none", "major", "minor")
CONNECTIONS = ("in_window", "too_late", "none")
SEARCHES = ("none", "booked", "stalled", "too_late")

# Every combination that matters appears once before random draws take over, so even a
# small run fires every rule and exercises every near miss.
_COVERAGE = [
    ("major", "in_window", "stalled", "gold"),
    ("major", "too_late", "booked", "basic"),
    ("minor", "in_window", "stalled", "silver"),
    ("minor", "none", "too_late", "gold"),
    ("major", "in_window", "booked", "silver"),
    ("none", "in_window", "booked", "gold"),
    ("major", "none", "none", "basic"),
    ("none", "none", "none", "basic"),
]


def plan(rng: random.Random, entities: int, start_ms: int) -> Plan:
    log = EventLog(SPEC.id_prefix)
    events, noise = log.events, log.noise
    expected: dict[str, set[str]] = {rule: set() for rule in SPEC.rule_keys}
    context: list[Event] = []
    keys: list[str] = []

    def add(kind: str, ts: int, pid: str, is_noise: bool, **fields: object) -> Event:
        return log.add(kind, ts, is_noise, passenger_id=pid, **fields)

    for i in range(entities):
        pid = f"P-{i + 1:05d}"
        keys.append(pid)
        if i < len(_COVERAGE):
            delay, connection, search, tier = _COVERAGE[i]
        else:
            delay = rng.choices(DELAYS, weights=(0.4, 0.35, 0.25))[0]
            connection = rng.choices(CONNECTIONS, weights=(0.5, 0.2, 0.3))[0]
            search = rng.choices(SEARCHES, weights=(0.3, 0.3, 0.3, 0.1))[0]
            tier = rng.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS])[0]
        hub = rng.choice(HUBS)
        dest = rng.choice(DESTINATIONS)
        flight = f"KA{rng.randint(100, 999)}"
        connecting = f"KA{rng.randint(1000, 1999)}"
        context.append(
            {
                "passenger_id": pid,
                "tier": tier,
                "name": f"Passenger {i + 1}",
                "home_airport": rng.choice(HUBS),
            }
        )

        t0 = start_ms + uniform_ms(rng, 0, SPAN_MS)
        add("CheckIn", t0, pid, True, flight=flight, origin=hub, seat=f"{rng.randint(1, 40)}C")
        if rng.random() < 0.4:
            add(
                "GateChanged",
                t0 + uniform_ms(rng, 5 * MINUTE, 40 * MINUTE),
                pid,
                True,
                flight=flight,
                gate=f"{rng.choice('ABCDE')}{rng.randint(1, 60)}",
            )

        t1 = t0 + uniform_ms(rng, 45 * MINUTE, 90 * MINUTE)
        if delay != "none":
            minutes = rng.randint(60, 180) if delay == "major" else rng.randint(15, 55)
            add("FlightDelayed", t1, pid, False, flight=flight, origin=hub, delay_min=minutes)
            if tier == "gold":
                expected["lounge-voucher"].add(pid)

        if connection == "in_window":
            t_risk = t1 + uniform_ms(rng, 10 * MINUTE, 100 * MINUTE)
        elif connection == "too_late":
            t_risk = t1 + uniform_ms(rng, 140 * MINUTE, 240 * MINUTE)
        else:
            t_risk = None
        if t_risk is not None:
            add(
                "ConnectionAtRisk",
                t_risk,
                pid,
                delay == "none",
                flight=flight,
                connecting_flight=connecting,
                destination=dest,
                minutes_to_departure=rng.randint(20, 90),
            )
            if delay == "major" and connection == "in_window":
                expected["rebooking-offer"].add(pid)

        delayed = delay != "none"
        if search == "booked":
            t_s = t1 + uniform_ms(rng, 5 * MINUTE, 20 * MINUTE)
            add("RebookingSearch", t_s, pid, not delayed, flight=flight, destination=dest)
            add(
                "Booking",
                t_s + uniform_ms(rng, 2 * MINUTE, 15 * MINUTE),
                pid,
                not delayed,
                flight=connecting,
                destination=dest,
            )
        elif search == "stalled":
            t_s = t1 + uniform_ms(rng, 5 * MINUTE, 25 * MINUTE)
            add("RebookingSearch", t_s, pid, not delayed, flight=flight, destination=dest)
            if rng.random() < 0.5:
                add(
                    "Booking",
                    t1 + uniform_ms(rng, 55 * MINUTE, 120 * MINUTE),
                    pid,
                    not delayed,
                    flight=connecting,
                    destination=dest,
                )
            if delayed:
                expected["service-desk-alert"].add(pid)
        elif search == "too_late":
            t_s = t1 + uniform_ms(rng, 50 * MINUTE, 80 * MINUTE)
            add("RebookingSearch", t_s, pid, not delayed, flight=flight, destination=dest)

    def trailing(pid: str, ts: int, event_id: str) -> Event:
        return {
            "event_id": event_id,
            "type": "CheckIn",
            "ts": ts,
            "passenger_id": pid,
            "flight": "KA000",
            "origin": "FRA",
            "seat": "1A",
        }

    return Plan(
        events=events,
        noise=noise,
        expected=expected,
        context=context,
        entities=keys,
        trailing=trailing,
    )
