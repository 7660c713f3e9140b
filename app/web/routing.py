"""Send a key lookup to the worker that owns the key.

A :class:`KeyRouter` answers "is this key mine?" and, when it is not, forwards the
request. :class:`FaustKeyRouter` asks Faust which worker holds the key's table
partition (``app.router.key_store``, the mechanism behind ``@app.table_route``)
and forwards over HTTP; :class:`LocalRouter` answers everything locally (one
worker, or unit tests).

A forwarded request carries ``X-Kairos-Forwarded-By``; the receiving worker
answers it itself instead of forwarding again, so a request crosses at most one
hop even while two workers disagree about the assignment during a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from yarl import URL

from app.web.problems import Problem
from app.web.provider import StateProvider

__all__ = ["FORWARDED_BY", "SERVED_BY", "FaustKeyRouter", "KeyRouter", "LocalRouter"]

log = logging.getLogger("kairos.web")

FORWARDED_BY = "X-Kairos-Forwarded-By"
SERVED_BY = "X-Kairos-Served-By"

# Headers worth passing on to the owner; hop-by-hop and Host are left out.
_PASS_HEADERS = ("Authorization", "Accept", "Accept-Language", "User-Agent")


class KeyRouter(Protocol):
    """Decides where a key lookup is answered."""

    @property
    def identity(self) -> str:
        """This worker's URL (reported in ``X-Kairos-Served-By``)."""
        ...

    async def forward(self, key: str, request: web.Request) -> web.Response | None:
        """The owner's response, or ``None`` when this worker should answer."""
        ...


class LocalRouter:
    """Every key is answered here."""

    def __init__(self, identity: str = "local") -> None:
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity

    async def forward(self, key: str, request: web.Request) -> web.Response | None:
        return None


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


_UNKNOWN_OWNER = (
    "The worker owning this key is not known yet (partitions are being assigned); "
    "retry in a few seconds."
)


class FaustKeyRouter:
    """Route by the partition assignment Faust keeps for the provider's key table."""

    def __init__(self, app: Any, provider: StateProvider, *, timeout: float = 5.0) -> None:
        self.app = app
        self.provider = provider
        self.timeout = timeout

    @property
    def identity(self) -> str:
        return str(self.app.conf.canonical_url)

    async def owner(self, key: str) -> URL:
        """URL of the worker owning ``key``; 503 problem while the assignment is unknown."""
        table = self.provider.key_table_name()
        for attempt in range(2):
            try:
                return URL(str(self.app.router.key_store(table, key)))
            except KeyError:
                break  # no worker assigned to that partition yet
            except TypeError:
                # The producer hashes with its own metadata, which lacks topics it has not
                # produced to yet (the changelog of a quiet table): fetch it once, retry.
                if attempt == 0 and await self._learn_changelog_partitions(table):
                    continue
                break
        raise Problem(503, _UNKNOWN_OWNER, headers={"Retry-After": "2"})

    async def _learn_changelog_partitions(self, table: str) -> bool:
        try:
            topic = self.app.tables[table].changelog_topic.get_topic_name()
            producer = self.app.producer._ensure_producer()  # the aiokafka producer
            async with asyncio.timeout(self.timeout):
                await producer.partitions_for(topic)
            return True
        except Exception:
            log.warning("cannot read the partitions of table %r", table, exc_info=True)
            return False

    async def forward(self, key: str, request: web.Request) -> web.Response | None:
        if request.headers.get(FORWARDED_BY):
            return None
        dest = await self.owner(key)
        if _ident(dest) == _ident(URL(self.identity)):
            return None
        url = URL.build(
            scheme=dest.scheme or "http",
            host=dest.host or "",
            port=dest.port,
            path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            encoded=True,
        )
        headers = {h: request.headers[h] for h in _PASS_HEADERS if h in request.headers}
        headers[FORWARDED_BY] = self.identity
        try:
            async with self.app.http_client.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                body = await resp.read()
                out_headers = {SERVED_BY: resp.headers.get(SERVED_BY, str(dest))}
                for name in ("WWW-Authenticate", "Retry-After"):
                    if name in resp.headers:
                        out_headers[name] = resp.headers[name]
                return web.Response(
                    body=body,
                    status=resp.status,
                    content_type=resp.content_type,
                    headers=out_headers,
                )
        except TimeoutError:
            raise Problem(
                504,
                f"The worker owning this key ({dest}) did not answer within {self.timeout:g} s; "
                "retry, or check that worker's /readyz.",
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise Problem(
                502,
                f"The worker owning this key ({dest}) could not be reached "
                f"({exc.__class__.__name__}); check that its KAIROS_WEB_CANONICAL_URL is "
                "reachable from the other workers.",
            ) from None
