"""Model health: is today's traffic still like the training data, and how did the model do?

- `profile`: the training data's reference profile (bins and their counts per feature,
  and the score's), stored in the model's metadata, and the one binning of the model's
  input matrix that training, the service and the offline report all use.
- `drift`: the population stability index (PSI) per feature and for the score, the
  ok / warn / drift status it maps to, and `MIN_CUSTOMERS`, the one minimum of what may
  be shown of a group of customers.
- `live`, with `live_counts`, `live_files` and `live_gauges`: what the service scores,
  counted in every worker over closed windows of the clock and summed for all, for
  GET /v2/drift and /metrics. service.py builds the service's scorer with
  `live.scorer_for` and gives it to the predictor; scoring never imports this package.
- `performance`, `card` and `document`: holdout metrics overall and per segment,
  calibration, mean |TreeSHAP| per feature and country, and the model card laid out from
  them once and written as Markdown and HTML.
- `files`, `drift_report`, `evaluate` and `commands`: `churn drift FILE` and `churn
  evaluate`, model health from files.

This package imports the inner rooms (record, model, scoring, settings) and no further;
which rooms may import it, tests/test_architecture.py says.
"""
