"""Ask a running cluster which brokers are registered (a metadata request via aiokafka)."""

from __future__ import annotations

import asyncio
import concurrent.futures


async def _broker_ids(bootstrap: str, timeout: float) -> set[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout * 1000),
        client_id="kairos-launcher-probe",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        info = await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        await admin.close()
    return {int(b["node_id"]) for b in info["brokers"]}


def broker_ids(bootstrap: str, timeout: float = 5.0) -> set[int]:
    """Node ids of the brokers the cluster reports; raises on any connection error.

    Runs on its own event loop in a worker thread, so it is safe to call from code that
    already runs inside an event loop (e.g. an async test).
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _broker_ids(bootstrap, timeout)).result()
