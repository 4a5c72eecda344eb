"""httpx adapters for the upstream APIs."""
