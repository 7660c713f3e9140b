"""Supply chain: SKUs with periodic stock readings, delayed inbound shipments, purchase orders.

Every SKU belongs to one supplier and reports its stock every ~6 h for 14 days; readings sit
well above the reorder point except inside a story. Half of a supplier's SKUs carry one
reorder story (margins of an hour or more around the 24 h window):

- ``alert``: shipment delayed 2-18 h before the stock falls below the reorder point (two low
  readings), no purchase order in between -> ``reorder-alert``; a purchase order follows;
- ``ordered``: delayed, a purchase order, then the low readings (no alert);
- ``too_late``: delayed 28-40 h before the low readings (window missed);
- ``no_delay``: low readings without any delay.

The other SKUs are *quiet* (never low): supplier stories put their delays there, so they can
never complete a reorder alert. A supplier is ``unreliable`` (3-4 delays within 5 days),
``spread`` (3 delays over 8.5+ days; its SKUs carry only delay-free stories) or ``steady``
(0-1 delays besides those of its reorder stories). ``supplier-alert`` counts
every delay of the supplier (reorder stories included): its truth is three delays spanning
less than 7 days, and supplier stories are redrawn until no span is within 6 h of 7 days.

Noise: stock readings above the reorder point and routine purchase orders on quiet SKUs.
Every event carries both ``sku`` and ``supplier_id`` (the two rules' keys).
"""

from __future__ import annotations

import random

from app.simulate.base import DAY, HOUR, MINUTE, Event, EventLog, Plan, ScenarioSpec, uniform_ms

SPEC = ScenarioSpec(
    name="supply",
    topic="supply-events",
    context_topic="sku-master",
    entity_field="sku",
    key_fields=("sku", "supplier_id"),
    rule_keys={"reorder-alert": "sku", "supplier-alert": "supplier_id"},
    ooo_ms=10 * MINUTE,
    longest_window_ms=7 * DAY,
    events_per_entity=60.0,
    id_prefix="sp",
)

SPAN_MS = 14 * DAY
READING_EVERY_MS = 6 * HOUR
SUPPLIER_WINDOW_MS = 7 * DAY
SUPPLIER_MARGIN_MS = 6 * HOUR
SKUS_PER_SUPPLIER = 6
WAREHOUSES = ("HAM", "RTM", "LYS", "MXP")
SKU_STORIES = ("alert", "ordered", "too_late", "no_delay")
SUPPLIER_STORIES = ("unreliable", "spread", "steady")


def plan(rng: random.Random, entities: int, start_ms: int) -> Plan:
    log = EventLog(SPEC.id_prefix)
    events, noise = log.events, log.noise
    expected: dict[str, set[str]] = {rule: set() for rule in SPEC.rule_keys}
    context: list[Event] = []
    n_skus = max(4, entities)
    n_suppliers = max(2, n_skus // SKUS_PER_SUPPLIER)

    def add(kind: str, ts: int, sku: str, supplier: str, is_noise: bool, **f: object) -> Event:
        return log.add(kind, ts, is_noise, sku=sku, supplier_id=supplier, **f)

    suppliers = [f"SUP-{j + 1:03d}" for j in range(n_suppliers)]
    skus = [f"SKU-{i + 1:05d}" for i in range(n_skus)]
    owner = {sku: suppliers[i % n_suppliers] for i, sku in enumerate(skus)}
    by_supplier: dict[str, list[str]] = {s: [] for s in suppliers}
    for sku in skus:
        by_supplier[owner[sku]].append(sku)

    # Supplier stories first: a 'spread' supplier's SKUs carry no delay-bearing reorder story,
    # so its three spread delays stay a near miss.
    kinds = {
        supplier: SUPPLIER_STORIES[j]
        if j < len(SUPPLIER_STORIES)
        else rng.choices(SUPPLIER_STORIES, weights=(0.3, 0.3, 0.4))[0]
        for j, supplier in enumerate(suppliers)
    }
    delays: dict[str, list[int]] = {s: [] for s in suppliers}  # every delay time, per supplier
    quiet: dict[str, list[str]] = {s: [] for s in suppliers}
    story_no = 0
    for sku in skus:
        supplier = owner[sku]
        rp = rng.randint(40, 200)
        warehouse = rng.choice(WAREHOUSES)
        context.append(
            {"sku": sku, "supplier_id": supplier, "reorder_point": rp, "warehouse": warehouse}
        )
        readings = []
        t = start_ms + uniform_ms(rng, 0, READING_EVERY_MS)
        while t < start_ms + SPAN_MS:
            readings.append(t)
            t += READING_EVERY_MS + uniform_ms(rng, -30 * MINUTE, 30 * MINUTE)
        # Alternate SKUs of a supplier: even positions get a story, odd ones stay quiet.
        position = by_supplier[supplier].index(sku)
        story = None
        if position % 2 == 0 and kinds[supplier] == "spread":
            story = "no_delay"
        elif position % 2 == 0:
            story = (
                SKU_STORIES[story_no % len(SKU_STORIES)]
                if story_no < 4
                else rng.choice(SKU_STORIES)
            )
            story_no += 1
        else:
            quiet[supplier].append(sku)

        low: set[int] = set()
        if story is not None:
            j = rng.randint(8, len(readings) - 3)
            low = {j, j + 1}
            r = readings[j]
            d = None
            if story == "alert":
                d = r - uniform_ms(rng, 2 * HOUR, 18 * HOUR)
                expected["reorder-alert"].add(sku)
            elif story == "ordered":
                d = r - uniform_ms(rng, 10 * HOUR, 20 * HOUR)
                po = d + uniform_ms(rng, 1 * HOUR, (r - d) - 1 * HOUR)
                add(
                    "PurchaseOrder",
                    po,
                    sku,
                    supplier,
                    False,
                    po_id=f"PO-{log.counter + 1:07d}",
                    qty=rng.randint(50, 500),
                )
            elif story == "too_late":
                d = r - uniform_ms(rng, 28 * HOUR, 40 * HOUR)
            if d is not None:
                add(
                    "ShipmentDelayed",
                    d,
                    sku,
                    supplier,
                    False,
                    shipment_id=f"SH-{log.counter + 1:07d}",
                    delay_h=rng.randint(6, 72),
                )
                delays[supplier].append(d)
            if story == "alert":
                after = readings[j + 1] + uniform_ms(rng, 1 * HOUR, 3 * HOUR)
                add(
                    "PurchaseOrder",
                    after,
                    sku,
                    supplier,
                    False,
                    po_id=f"PO-{log.counter + 1:07d}",
                    qty=rng.randint(50, 500),
                )
        for idx, ts in enumerate(readings):
            if idx in low:
                add(
                    "StockLevel",
                    ts,
                    sku,
                    supplier,
                    False,
                    warehouse=warehouse,
                    level=rng.randint(0, rp - 5),
                    reorder_point=rp,
                )
            else:
                add(
                    "StockLevel",
                    ts,
                    sku,
                    supplier,
                    True,
                    warehouse=warehouse,
                    level=rng.randint(rp + 10, rp * 4),
                    reorder_point=rp,
                )
        if story is None and rng.random() < 0.5:
            po = start_ms + uniform_ms(rng, 0, SPAN_MS)
            add(
                "PurchaseOrder",
                po,
                sku,
                supplier,
                True,
                po_id=f"PO-{log.counter + 1:07d}",
                qty=rng.randint(50, 500),
            )

    for supplier in suppliers:
        chosen = _supplier_delays(rng, kinds[supplier], start_ms, delays[supplier])
        targets = quiet[supplier] or by_supplier[supplier]
        if not quiet[supplier] and chosen:
            raise RuntimeError(f"simulator bug: supplier {supplier} has no quiet SKU")
        for d in chosen:
            sku = rng.choice(targets)
            add(
                "ShipmentDelayed",
                d,
                sku,
                supplier,
                False,
                shipment_id=f"SH-{log.counter + 1:07d}",
                delay_h=rng.randint(6, 72),
            )
        verdict = _three_within(
            sorted(delays[supplier] + chosen), SUPPLIER_WINDOW_MS, SUPPLIER_MARGIN_MS
        )
        if verdict is None:
            raise RuntimeError(
                f"simulator bug: the delays of {supplier} sit on the 7-day boundary; "
                "report the seed and arguments"
            )
        if verdict:
            expected["supplier-alert"].add(supplier)

    def trailing(sku: str, ts: int, event_id: str) -> Event:
        return {
            "event_id": event_id,
            "type": "StockLevel",
            "ts": ts,
            "sku": sku,
            "supplier_id": owner[sku],
            "warehouse": "HAM",
            "level": 10_000,
            "reorder_point": 0,
        }

    return Plan(
        events=events,
        noise=noise,
        expected=expected,
        context=context,
        entities=skus,
        trailing=trailing,
    )


def _supplier_delays(rng: random.Random, kind: str, start_ms: int, fixed: list[int]) -> list[int]:
    """Draw the supplier story's delays, redrawing until no 3-span is near the 7-day window.

    If the reorder stories' delays alone sit on the boundary, an unreliable story (which
    inserts delays between them) is tried instead.
    """
    for attempt in range(400):
        if attempt == 200:
            kind = "unreliable"
        if kind == "unreliable":
            t = start_ms + uniform_ms(rng, 0, SPAN_MS - 5 * DAY)
            chosen = [t + uniform_ms(rng, 0, 5 * DAY) for _ in range(rng.randint(3, 4))]
        elif kind == "spread":
            t = start_ms + uniform_ms(rng, 0, SPAN_MS - 10 * DAY)
            chosen = [
                t,
                t + uniform_ms(rng, 4 * DAY, 5 * DAY),
                t + uniform_ms(rng, 8.5 * DAY, 10 * DAY),
            ]
        else:
            chosen = [start_ms + uniform_ms(rng, 0, SPAN_MS) for _ in range(rng.randint(0, 1))]
        if (
            _three_within(sorted(fixed + chosen), SUPPLIER_WINDOW_MS, SUPPLIER_MARGIN_MS)
            is not None
        ):
            return chosen
    return []  # the caller reports the boundary


def _three_within(times: list[int], window_ms: int, margin_ms: int) -> bool | None:
    """True if three consecutive times span less than the window, False if none does,
    None if some span is within ``margin_ms`` of the window (ambiguous: redraw)."""
    hit = False
    for a, c in zip(times, times[2:], strict=False):
        if abs((c - a) - window_ms) < margin_ms:
            return None
        hit = hit or (c - a) < window_ms
    return hit
