"""The HTTP layer: an ASGI app with the queue API, live updates over
Server-Sent Events, health and Prometheus metrics."""

from conveyor.server.app import create_app as create_app
from conveyor.server.auth import bearer_guard as bearer_guard

__all__ = ["bearer_guard", "create_app"]
