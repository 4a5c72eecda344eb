"""Queues: the producer's handle (:class:`Queue`), made of the modules of
this package: adding (handle), reading, limits, schedules, admin."""

from conveyor.engine.queue.handle import BulkItem, Queue

__all__ = ["BulkItem", "Queue"]
