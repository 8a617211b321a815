"""Issue 26, part 3: the old app in its own environment beside the service (bench.py)."""
