"""The kairos_* metrics and their batch update API."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.metrics import KairosMetrics


def samples(metrics: KairosMetrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_batch_updates_show_up_in_the_exposition() -> None:
    m = KairosMetrics()
    m.events_in("flights", 100)
    m.events_in("flights", 20)
    m.detections("rebooking", matches=3, timeouts=1, late=2)
    m.dlq("no_key", 4)
    m.set_partial_matches("rebooking", 17)
    m.observe_latency(0.004)
    m.observe_keyed_wait(0.002)
    m.observe_keyed_wait(0.003)
    m.set_lag_source(lambda: [("kairos-keyed", 0, 12), ("kairos-keyed", 1, 0)])
    s = samples(m)
    assert s[("kairos_events_in_total", (("topic", "flights"),))] == 120
    assert s[("kairos_matches_total", (("rule", "rebooking"),))] == 3
    assert s[("kairos_timeouts_total", (("rule", "rebooking"),))] == 1
    assert s[("kairos_late_events_total", (("rule", "rebooking"),))] == 2
    assert s[("kairos_dlq_messages_total", (("reason", "no_key"),))] == 4
    assert s[("kairos_partial_matches", (("rule", "rebooking"),))] == 17
    assert s[("kairos_processing_latency_seconds_count", ())] == 1
    assert s[("kairos_keyed_wait_seconds_count", ())] == 2
    assert s[("kairos_keyed_wait_seconds_bucket", (("le", "0.0025"),))] == 1
    assert s[("kairos_consumer_lag", (("partition", "0"), ("topic", "kairos-keyed")))] == 12
    assert m.totals().events == 120 and m.totals().dlq == 4


def test_a_failing_lag_source_does_not_break_the_scrape() -> None:
    m = KairosMetrics()

    def broken():
        raise RuntimeError("rebalancing")

    m.set_lag_source(broken)
    assert b"kairos_consumer_lag" in m.render()


def test_every_metric_is_named_kairos() -> None:
    names = {f.name for f in text_string_to_metric_families(KairosMetrics().render().decode())}
    assert names and all(n.startswith("kairos_") for n in names)
