"""Scoring the whole customer book on Apache Spark, with the service's own code.

`churn batch score` reads CSV or Parquet, checks each row with `churn.record.csvio` and
scores it with `churn.scoring.scorer.Scorer` inside Spark's Python workers, over Arrow
batches (`mapInArrow`), so the same rows get the same probabilities, labels, bands
and reasons as from the service; `churn batch call-list` lists the riskiest customers
with their exact TreeSHAP reasons (`churn.scoring.predictor`, as /v2/explain). README:
"Score the whole book on Spark".

This package imports the service's modules and is never imported by them: `churn`
starts without pyspark, which only the `spark` extra installs.
"""
