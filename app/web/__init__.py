"""The web view: HTTP API, live dashboard, probes and metrics, on Faust's web server.

The runtime implements :class:`StateProvider`; :func:`install` mounts everything
on a Faust app, :func:`create_app` builds a stand-alone aiohttp application.
"""

from app.web.provider import StateProvider
from app.web.server import create_app, install
from app.web.settings import WebSettings

__all__ = ["StateProvider", "WebSettings", "create_app", "install"]
