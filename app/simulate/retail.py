"""Right-time offers: shoppers browsing, filling carts, ordering over 40 days.

Each customer has a persona that fixes how many sessions buy and when; sessions are at
least a day apart, so the 10- and 30-minute rules never span two sessions. Session kinds
(rule outcomes by construction, margins of a minute or more):

- ``buy``: 2-4 views of distinct categories, 1-2 carts, checkout, order 2-10 min after the
  last cart (within 30 min of every cart);
- ``abandon``: views, 1-2 carts, perhaps a checkout, no order -> ``cart-abandonment``;
- ``focus``: three views of one category within 6 min, no cart -> ``browse-recommendation``;
- ``focus_cart``: the same, then a cart before 9 min and an order (no recommendation);
- ``slow_focus``: three views of one category spread over 11-14 min (window missed);
- ``browse``: views of distinct categories only.

Orders (``buy``, ``focus_cart``) feed ``loyalty-reward``: a ``frequent`` customer buys 3+
times within 20 days; ``spread`` buys 3 times over 31+ days (no reward); ``occasional``
buys at most twice. Noise: CheckoutStarted and browsing.
"""

from __future__ import annotations

import random
from typing import Any

from app.simulate.base import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    Event,
    EventLog,
    Plan,
    ScenarioSpec,
    uniform_ms,
)

SPEC = ScenarioSpec(
    name="retail",
    topic="retail-events",
    context_topic="customer-profiles",
    entity_field="customer_id",
    key_fields=("customer_id",),
    rule_keys={
        "cart-abandonment": "customer_id",
        "browse-recommendation": "customer_id",
        "loyalty-reward": "customer_id",
    },
    ooo_ms=2 * MINUTE,
    longest_window_ms=30 * DAY,
    events_per_entity=18.0,
    id_prefix="rt",
)

LOYALTY_WINDOW_MS = 30 * DAY
CATEGORIES = (
    "shoes",
    "jackets",
    "watches",
    "bags",
    "laptops",
    "phones",
    "headphones",
    "cameras",
    "kitchen",
    "garden",
    "books",
    "toys",
)
PERSONAS = ("frequent", "spread", "occasional")
OTHER_SESSIONS = ("abandon", "focus", "slow_focus", "browse")

_COVERAGE: list[tuple[str, list[str]]] = [
    ("frequent", ["abandon", "focus"]),
    ("spread", ["slow_focus"]),
    ("occasional", ["focus_cart_only", "abandon"]),
    ("occasional", ["focus", "browse"]),
    ("frequent", ["browse"]),
]


def plan(rng: random.Random, entities: int, start_ms: int) -> Plan:
    log = EventLog(SPEC.id_prefix)
    events, noise = log.events, log.noise
    expected: dict[str, set[str]] = {rule: set() for rule in SPEC.rule_keys}
    context: list[Event] = []
    keys: list[str] = []

    def add(kind: str, ts: int, cid: str, is_noise: bool, **fields: object) -> Event:
        return log.add(kind, ts, is_noise, customer_id=cid, **fields)

    def product(category: str) -> dict[str, Any]:
        return {
            "product_id": f"{category[:3].upper()}-{rng.randint(100, 999)}",
            "category": category,
            "price": round(rng.uniform(9, 400), 2),
        }

    def views(cid: str, t: int, categories: list[str]) -> tuple[int, list[dict[str, Any]]]:
        shown = []
        for c in categories:
            p = product(c)
            add("ProductViewed", t, cid, False, **p)
            shown.append(p)
            t += uniform_ms(rng, 20 * SECOND, 90 * SECOND)
        return t, shown

    def session(cid: str, kind: str, t: int) -> int | None:
        """Emit one session starting at ``t``; return the order time if it orders."""
        order_at = None
        if kind in ("buy", "abandon", "browse"):
            cats = rng.sample(CATEGORIES, rng.randint(2, 4))
            t, shown = views(cid, t, cats)
            if kind == "browse":
                return None
            carts = rng.sample(shown, rng.randint(1, min(2, len(shown))))
            for p in carts:
                add("AddedToCart", t, cid, False, quantity=rng.randint(1, 3), **p)
                t += uniform_ms(rng, 30 * SECOND, 2 * MINUTE)
            if kind == "buy" or rng.random() < 0.5:
                add("CheckoutStarted", t, cid, True, items=len(carts))
            if kind == "buy":
                order_at = t + uniform_ms(rng, 2 * MINUTE, 8 * MINUTE)
                add(
                    "OrderPlaced",
                    order_at,
                    cid,
                    False,
                    order_id=f"O-{log.counter + 1:07d}",
                    total=round(sum(p["price"] for p in carts), 2),
                )
            else:
                expected["cart-abandonment"].add(cid)
            return order_at
        # focus sessions: three views of one category; other views never repeat a category.
        focus = rng.choice(CATEGORIES)
        others = [c for c in CATEGORIES if c != focus]
        v1 = t
        if kind == "slow_focus":
            times = [v1, v1 + uniform_ms(rng, 5 * MINUTE, 6 * MINUTE)]
            times.append(times[1] + uniform_ms(rng, 6 * MINUTE, 8 * MINUTE))
        else:
            times = [v1, v1 + uniform_ms(rng, 1 * MINUTE, 3 * MINUTE)]
            times.append(times[1] + uniform_ms(rng, 1 * MINUTE, 3 * MINUTE))
        extra = rng.choice(others)
        extra_at = rng.randint(times[0] + 1, times[1] - 1)
        add("ProductViewed", extra_at, cid, False, **product(extra))
        last = None
        for ts in times:
            last = product(focus)
            add("ProductViewed", ts, cid, False, **last)
        assert last is not None
        if kind == "focus":
            expected["browse-recommendation"].add(cid)
            return None
        if kind == "focus_cart":
            t_cart = times[2] + uniform_ms(rng, 30 * SECOND, 3 * MINUTE)
            add("AddedToCart", t_cart, cid, False, quantity=1, **last)
            add("CheckoutStarted", t_cart + MINUTE, cid, True, items=1)
            order_at = t_cart + uniform_ms(rng, 2 * MINUTE, 8 * MINUTE)
            add(
                "OrderPlaced",
                order_at,
                cid,
                False,
                order_id=f"O-{log.counter + 1:07d}",
                total=last["price"],
            )
            return order_at
        return None  # slow_focus

    for i in range(entities):
        cid = f"C-{i + 1:05d}"
        keys.append(cid)
        if i < len(_COVERAGE):
            persona, others = _COVERAGE[i]
        else:
            persona = rng.choices(PERSONAS, weights=(0.35, 0.15, 0.5))[0]
            others = rng.sample(OTHER_SESSIONS, rng.randint(0, 2))
        context.append(
            {
                "customer_id": cid,
                "tier": rng.choices(("gold", "silver", "basic"), weights=(0.1, 0.3, 0.6))[0],
                "segment": rng.choice(("student", "family", "professional", "retired")),
            }
        )
        # Buying session days per persona (distinct whole days, so sessions never overlap).
        if persona == "frequent":
            buy_days = sorted(rng.sample(range(0, 21), rng.randint(3, 4)))
        elif persona == "spread":
            d0 = rng.randint(0, 4)
            buy_days = [d0, d0 + rng.randint(14, 17), d0 + rng.randint(32, 35)]
        else:
            # at most two orders in all, counting the one a focus_cart session adds
            most = 1 if "focus_cart_only" in others else 2
            buy_days = sorted(rng.sample(range(0, 40), rng.randint(0, most)))
        free_days = [d for d in range(0, 40) if d not in buy_days]
        sessions = [(d, "buy") for d in buy_days]
        for kind in others:
            if kind == "focus_cart_only":
                # a focus session that ends in an order: one more order for the persona
                kind = "focus_cart"
            sessions.append((free_days.pop(rng.randrange(len(free_days))), kind))
        orders: list[int] = []
        for day, kind in sorted(sessions):
            t = start_ms + day * DAY + uniform_ms(rng, 7 * HOUR, 22 * HOUR)
            at = session(cid, kind, t)
            if at is not None:
                orders.append(at)
        if _third_order_within(sorted(orders), LOYALTY_WINDOW_MS):
            expected["loyalty-reward"].add(cid)

    def trailing(cid: str, ts: int, event_id: str) -> Event:
        return {
            "event_id": event_id,
            "type": "CheckoutStarted",
            "ts": ts,
            "customer_id": cid,
            "items": 0,
        }

    return Plan(
        events=events,
        noise=noise,
        expected=expected,
        context=context,
        entities=keys,
        trailing=trailing,
    )


def _third_order_within(orders: list[int], window_ms: int) -> bool:
    """True if some three consecutive orders span less than ``window_ms``.

    Raises if a span falls within a day of the window: the personas are built to stay clear
    of the boundary, so that would be a simulator bug.
    """
    hit = False
    for a, c in zip(orders, orders[2:], strict=False):
        span = c - a
        if abs(span - window_ms) < DAY:
            raise RuntimeError(
                f"simulator bug: three orders span {span} ms, within a day of the loyalty window"
            )
        hit = hit or span < window_ms
    return hit
