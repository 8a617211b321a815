"""Scoring the whole customer book on Apache Spark, with the service's own code.

`churn batch score` has Spark schedule tasks that each read a piece of the CSV or
Parquet input with pyarrow, check each row with `churn.record.validation` and score it with
`churn.scoring.scorer.Scorer` in a Python worker, over Arrow batches, and write their
own Parquet parts (no row passes through the JVM), so the same rows get the same
probabilities, labels, bands and reasons as from the service; `churn batch call-list`
lists the riskiest customers with their exact TreeSHAP reasons (`churn.scoring.predictor`,
as /v2/explain). README: "Score the whole book on Spark".

This package imports the service's modules and is never imported by them: `churn`
starts without pyspark, which only the `spark` extra installs.
"""
