"""Event infrastructure on Conveyor: typed platform events on a Redis
Stream, a processor with consumer groups and a router, a dead-letter
processor, and long-running, quick and event-triggered jobs."""
