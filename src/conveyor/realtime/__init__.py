"""Real time: progress of long-running work, and event streams."""
