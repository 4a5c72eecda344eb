"""The HTTP layer: an ASGI app with the queue API, live updates over
Server-Sent Events, health and Prometheus metrics.

It needs the ``server`` extra (``pip install 'conveyor[server]'``). This
package imports its web stack only when ``create_app`` or ``bearer_guard``
is first used, so the parts of the server the CLI shares (how a job reads
in words) work in a worker-only install."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.server.app import create_app as create_app
    from conveyor.server.auth import bearer_guard as bearer_guard
    from conveyor.server.feeds import ProgressHub as ProgressHub

__all__ = ["ProgressHub", "bearer_guard", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from conveyor.extras import SERVER

    SERVER.require(f"conveyor.server.{name}")
    if name == "create_app":
        from conveyor.server.app import create_app

        return create_app
    if name == "ProgressHub":
        from conveyor.server.feeds import ProgressHub

        return ProgressHub
    from conveyor.server.auth import bearer_guard

    return bearer_guard
