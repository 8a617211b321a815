"""Model health: is today's traffic still like the training data, and how did the model do?

- `profile`: the training data's reference profile (bins and their counts per feature,
  and the score's), stored in the model's metadata, and the one binning of the model's
  input matrix that training, the service and the offline report all use.
- `drift`: the population stability index (PSI) per feature and for the score, and the
  ok / warn / drift status it maps to.
- `performance` and `card`: holdout metrics overall and per segment, calibration, mean
  |TreeSHAP| per feature and country, and the model card rendered from them.

This package imports the inner rooms (record, model, scoring, settings) and none of them
imports it, except `churn.model.training`, which builds the profile and the card (an
exception tests/test_architecture.py names). What the service scores is profiled by the
scorer `live.scorer_for` makes, which service.py hands to the predictor: scoring never
imports this package.
"""
