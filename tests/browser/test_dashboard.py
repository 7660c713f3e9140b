"""The dashboard in headless Chromium, with the real pipeline running: a match produced by
the test shows up in the live feed and in the key search. Screenshots go to artifacts/."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import screenshot
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import KairosWorker, produce_json

pytestmark = pytest.mark.kafka


SUFFIX = uuid.uuid4().hex[:8]
SOURCE = f"dash-src-{SUFFIX}"

RULES = {
    "rebooking-offer": f"""
name: rebooking-offer
version: 2
description: A delayed passenger searches for a new flight
source: {SOURCE}
key: passenger
id: id
within: 2h
skip: skip_past_last_event
stages:
  - name: delayed
    where: event.type == 'FlightDelayed'
  - name: searched
    after: relaxed
    where: event.type == 'RebookingSearch'
emit:
  kind: offer
  topic: dash-offers-{SUFFIX}
  data: {{flight: "stages.delayed[0].flight", offer: "'rebook'"}}
""",
    "missed-connection": f"""
name: missed-connection
version: 1
source: {SOURCE}
key: passenger
id: id
within: 2h
stages:
  - name: delayed
    where: event.type == 'FlightDelayed'
  - name: at_risk
    after: relaxed
    where: event.type == 'ConnectionAtRisk'
emit:
  kind: alert
  topic: dash-alerts-{SUFFIX}
  data: {{flight: "stages.delayed[0].flight"}}
""",
}


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KairosWorker]:
    tmp = tmp_path_factory.mktemp("dashboard")
    rules = tmp / "rules"
    rules.mkdir()
    for name, text in RULES.items():
        (rules / f"{name}.yaml").write_text(text)
    asyncio.run(create_topic(kafka_bootstrap, SOURCE, partitions=2))
    w = KairosWorker(
        kafka_bootstrap,
        {
            "KAIROS_APP_ID": f"dash-{SUFFIX}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": f"dash-rules-{SUFFIX}",
            "KAIROS_RULES_STATUS_TOPIC": f"dash-status-{SUFFIX}",
            "KAIROS_DLQ_TOPIC": f"dash-dlq-{SUFFIX}",
            "KAIROS_PARTITIONS": "2",
            "KAIROS_STANDBY_REPLICAS": "0",
            "KAIROS_DATA_DIR": str(tmp / "data"),
        },
        tmp / "worker.log",
    )
    try:
        yield w.start()
    finally:
        w.stop()


async def test_a_produced_match_appears_on_the_dashboard(
    worker: KairosWorker, browser: webdriver.Chrome, kafka_bootstrap: str
) -> None:
    wait = WebDriverWait(browser, 60, poll_frequency=0.2)
    browser.get(f"http://127.0.0.1:{worker.port}/")
    try:
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "ready"), "ready"))

        passenger = f"P-{uuid.uuid4().hex[:4].upper()}"
        others = [f"P-{n:04d}-{SUFFIX[:3]}" for n in range(8)]
        events = [
            {"id": f"{p}-1", "passenger": p, "type": "FlightDelayed", "flight": "AF1234"}
            for p in [passenger, *others]
        ]
        events += [
            {"id": f"{passenger}-2", "passenger": passenger, "type": "RebookingSearch"},
            {"id": f"{others[0]}-2", "passenger": others[0], "type": "ConnectionAtRisk"},
            {"id": f"{others[1]}-2", "passenger": others[1], "type": "RebookingSearch"},
        ]
        await produce_json(kafka_bootstrap, SOURCE, events, key="passenger")

        # the live feed shows the passenger's offer, pushed over SSE
        item = f"#feed li[data-id] a.key[href='#key={passenger}']"
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, item)))
        row = browser.find_element(By.CSS_SELECTOR, item).find_element(By.XPATH, "./ancestor::li")
        assert "rebooking-offer" in row.text and "OFFER" in row.text.upper()
        assert "flight: AF1234" in row.text

        # the key search shows where that passenger stands, answered by its owner
        box = browser.find_element(By.ID, "key-input")
        box.clear()
        box.send_keys(passenger)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "key-result"), "answered by"))
        result = browser.find_element(By.ID, "key-result").text
        assert passenger in result and "rebooking-offer" in result and "missed-connection" in result

        # per-rule counters reached the table (refreshed every 5 s)
        def rule_row(name: str) -> list[str]:
            # read the table in one script: it is re-rendered every 5 s
            return browser.execute_script(
                "const tr = document.querySelector(`#rules tr[data-rule='${arguments[0]}']`);"
                "return tr ? [...tr.querySelectorAll('td')].map(td => td.innerText) : [];",
                name,
            )

        wait.until(lambda d: (row := rule_row("rebooking-offer")) and row[2] == "2")
        assert int(rule_row("rebooking-offer")[1].replace(",", "")) >= 11
        wait.until(lambda d: (row := rule_row("missed-connection")) and row[2] == "1")
        wait.until(lambda d: d.find_element(By.ID, "t-matches").text.split()[0] not in ("0", "–"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart path.events-line"))
    finally:
        path = screenshot(browser, "dashboard.png")
    assert path.stat().st_size > 10_000
