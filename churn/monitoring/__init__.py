"""Model health: is today's traffic still like the training data, and how did the model do?

- `profile`: the training data's reference profile (bins and their counts per feature,
  and the score's), stored in the model's metadata, and the one binning of the model's
  input matrix that training, the service and the offline report all use.
- `drift`: the population stability index (PSI) per feature and for the score, and the
  ok / warn / drift status it maps to.
- `performance` and `card`: holdout metrics overall and per segment, calibration, mean
  |TreeSHAP| per feature and country, and the model card rendered from them.

This package imports the inner modules (schema, scoring, artifacts, settings) and none of
them imports it, except for two hooks: `churn.model.training` builds the profile and the card,
and `churn.scoring.predictor` profiles what the service scores.
"""
