"""The engine: queues, workers and jobs on Redis."""
