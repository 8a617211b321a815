"""Performance benchmarks of the churn service against the old Flask app (issue 3)."""
