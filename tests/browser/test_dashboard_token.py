"""The dashboard against a worker that requires a read token (in-memory provider, no broker):
the page asks for the token once, then every panel loads and the stream connects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from app.metrics import KairosMetrics
from app.web import WebSettings, create_app
from tests.browser.conftest import screenshot
from tests.unit.web.fake import FakeProvider, detection
from tests.unit.web.serve import ServerThread


@pytest.fixture
def served() -> Iterator[tuple[ServerThread, FakeProvider]]:
    fake = FakeProvider()
    fake.add_rule("cart-abandonment", 2)
    fake.publish(detection("cart-abandonment", "C-77", "timeout"))
    app = create_app(fake, WebSettings(read_token="s3cret"), metrics=KairosMetrics())
    with ServerThread(app) as server:
        yield server, fake


def test_the_page_asks_for_the_read_token(
    served: tuple[ServerThread, FakeProvider], browser: webdriver.Chrome
) -> None:
    server, fake = served
    url = f"http://127.0.0.1:{server.port}"
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    browser.get(url + "/")
    try:
        dialog = wait.until(ec.visibility_of_element_located((By.ID, "token-dialog")))
        assert "read token" in dialog.text
        browser.find_element(By.ID, "token-input").send_keys("s3cret")
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "rules"), "cart-abandonment"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "feed"), "C-77"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        # the stream (token passed as ?access_token=) delivers what happens next
        # (published from the server's loop: the subscription queues belong to it)
        server.loop.call_soon_threadsafe(
            fake.publish, detection("cart-abandonment", "C-88", "match")
        )
        wait.until(ec.text_to_be_present_in_element((By.ID, "feed"), "C-88"))
    finally:
        screenshot(browser, "dashboard-token.png")
