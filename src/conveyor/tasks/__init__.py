"""The high-level layer: an app object with typed tasks."""
