"""The HTTP layer: an ASGI app with the queue API, live updates over
Server-Sent Events, health and Prometheus metrics."""

from conveyor.server.app import create_app as create_app

__all__ = ["create_app"]
