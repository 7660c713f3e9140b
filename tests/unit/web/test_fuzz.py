"""Fuzz the served API from its own OpenAPI document (schemathesis): no input yields a 500,
and every response matches the document (status codes, content types, bodies)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.metrics import KairosMetrics
from app.web import WebSettings, create_app
from app.web.openapi import document
from tests.unit.web.fake import FakeProvider, detection
from tests.unit.web.serve import ServerThread

ADMIN_TOKEN = "fuzz-admin"


def populated_provider() -> FakeProvider:
    fake = FakeProvider()
    fake.add_rule("cart-abandoned", 2)
    fake.add_rule("rebooking-offer", 3)
    fake.keys["P-1042"] = {
        "key": "P-1042",
        "rules": {
            "rebooking-offer": {
                "partial_matches": [
                    {
                        "stage": "delayed",
                        "waiting_for": ["searched"],
                        "events": {"delayed": ["e1"]},
                        "expires_at": 1_800_000_000_000,
                        "time_left_ms": 3_600_000,
                    }
                ]
            }
        },
        "context": {"tier": "gold"},
        "recent": [detection("rebooking-offer", "P-1042")],
    }
    for n in range(5):
        fake.publish(detection("cart-abandoned", f"c{n}", "timeout" if n % 2 else "match", n))
    return fake


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    app = create_app(
        populated_provider(), WebSettings(admin_token=ADMIN_TOKEN), metrics=KairosMetrics()
    )
    with ServerThread(app) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def api_schema(served: str):
    return schemathesis.openapi.from_url(f"{served}/api/openapi.json")


# (method, path, mode) of every operation in the document: valid input for all, invalid input
# for those that take any. The stream never ends by design and is tested in test_api.py.
CASES = sorted(
    (method, path, mode)
    for path, item in document()["paths"].items()
    if path != "/api/stream"
    for method, op in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or op.get("parameters") or op.get("requestBody")
)


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m.upper()} {p} {g}" for m, p, g in CASES]
)
def test_api_conforms_to_its_document(
    api_schema, served: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    # Whether a rule file is valid depends on more than its shape (CEL expressions, stage
    # references): a schema-valid body may rightly get 422, so that one check is off there.
    excluded = [positive_data_acceptance] if (method, path) == ("post", "/api/rules") else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case) -> None:
        case.call_and_validate(
            base_url=served,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            excluded_checks=excluded,
        )

    run()
