"""The jobs that compose the library's rooms: training, importing a model, the Spark
job's entry file, and `churn`, the operator's command line that runs them.

This room may import every library room (record, settings, model, scoring, monitoring,
spark, deploy); none of them imports it (tests/test_architecture.py).
"""
