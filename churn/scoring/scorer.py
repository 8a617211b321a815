"""Scoring with the model's booster and input columns (`churn.model.booster.TreeModel`).

The `Scorer` builds the model's input matrix directly (what the pipeline's
ColumnTransformer did, without its per-call pandas overhead) and asks the XGBoost
booster for probabilities, or for small batches the same trees walked with NumPy
(`churn.scoring.trees`). Tests check that both agree with `pipeline.predict_proba` on
the same customers.

Labels: a customer is churn when the probability XGBoost itself gives (float32) is at
or above the threshold (rule ">=") or strictly above it (">", `predict()`'s). The NumPy
walk sums the same leaves in another order, so its probability may differ from
XGBoost's in the last float32 bits; a row that close to the threshold (`_NEAR`) is
scored again by XGBoost, so that the label is exactly XGBoost's on both paths, at 0.5
included. The risk bands are `churn.record.outcome`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xgboost

from churn.model.booster import TreeModel
from churn.record.answers import Factor
from churn.record.outcome import (
    ANSWER_DIGITS,
    BANDS,
    LabelRule,
    direction_of,
    flagged,
    high_risk_from,
)
from churn.record.schema import FEATURE_NAMES, CustomerFeatures
from churn.scoring.trees import TreeEnsemble

if TYPE_CHECKING:
    import pandas as pd

# Up to this many rows NumPy's tree walk beats XGBoost's fixed cost per call.
SMALL_BATCH = 64
# From this many rows (a bulk request) XGBoost may use `bulk_threads`.
BULK_BATCH = 10_000
# Far wider than the two paths' difference (a few float32 ulps of a probability), and
# narrow enough that a row in it is rare: 1 synthetic customer in 40,000 at the bundled
# model's threshold (0.32), 1 in 200,000 at 0.5.
_NEAR = 1e-5


class Scorer:
    def __init__(
        self,
        model: TreeModel,
        threshold: float,
        *,
        label_rule: LabelRule = ">=",
        bulk_threads: int = 1,
    ) -> None:
        self.threshold = threshold
        self.label_rule: LabelRule = label_rule
        self.high_risk = high_risk_from(threshold)
        # A copy: its thread setting below is this scorer's, not its caller's booster's.
        self._booster: xgboost.Booster = model.booster.copy()
        # One thread per call: a server worker owns one core, and OpenMP's start-up cost
        # for a one-row request is larger than the prediction itself.
        self._booster.set_param({"nthread": 1})
        # A big batch alone (a bulk request) is worth a second core when one is idle:
        # 1,000,000 rows scored in 0.39-0.44 s instead of 0.68-0.74 s on 2 cores. A file
        # loses by it: its reading and writing threads hold that core (`bulk=False`).
        self._bulk_booster = self._booster
        if bulk_threads > 1:
            self._bulk_booster = self._booster.copy()
            self._bulk_booster.set_param({"nthread": bulk_threads})
        self._trees = TreeEnsemble(self._booster)
        self._columns = model.columns

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(features), len(self._columns)), dtype=np.float32)
        for index, column in enumerate(self._columns):
            values = features[column.feature]
            out[:, index] = (values == column.category) if column.category else values
        return out

    def matrix_of(self, customers: Sequence[CustomerFeatures]) -> np.ndarray:
        return np.array(
            [
                [
                    (getattr(c, col.feature) == col.category)
                    if col.category
                    else getattr(c, col.feature)
                    for col in self._columns
                ]
                for c in customers
            ],
            dtype=np.float32,
        ).reshape(len(customers), len(self._columns))

    def probabilities(
        self, matrix: np.ndarray, *, bulk: bool = True, observe: bool = True
    ) -> np.ndarray:
        """Churn probabilities of the rows of the model's input matrix.

        `bulk=False`: other stages of the same request hold the other cores.
        `observe=False`: the caller hands the scores to `observe` itself, in another
        thread (a file's writing thread), off the scoring thread.
        """
        scores = self._probabilities(matrix, bulk)
        if observe:
            self.observe(matrix, scores)
        return scores

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        """Customers just scored: nothing to do here; a scorer that profiles drift counts
        them (`churn.monitoring.live`)."""

    def _probabilities(self, matrix: np.ndarray, bulk: bool) -> np.ndarray:
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float64)
        if len(matrix) <= SMALL_BATCH:
            scores = self._trees.probabilities(matrix)
            # Rare: the label is XGBoost's own (module docstring). One row (a
            # /v1/customer request) is checked without NumPy's per-call cost (5 us).
            if len(scores) == 1:
                if abs(scores.item() - self.threshold) < _NEAR:
                    scores[:] = self._booster.inplace_predict(matrix)
            else:
                near = np.abs(scores - self.threshold) < _NEAR
                if near.any():
                    scores[near] = self._booster.inplace_predict(matrix[near])
            return scores
        booster = self._bulk_booster if bulk and len(matrix) >= BULK_BATCH else self._booster
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)

    def score_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.probabilities(self.matrix(features))

    def score_customers(self, customers: Sequence[CustomerFeatures]) -> np.ndarray:
        return self.probabilities(self.matrix_of(customers))

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return flagged(probabilities, self.threshold, self.label_rule)

    def band_codes(self, probabilities: np.ndarray) -> np.ndarray:
        """Index into BANDS for each probability: medium from where the label flips, high
        from `high_risk` among those labelled churn."""
        churn = self.labels(probabilities)
        return churn.astype(np.int8) + (churn & (probabilities >= self.high_risk)).astype(np.int8)

    def bands(self, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(np.asarray(BANDS)[self.band_codes(probabilities)])

    def explain(self, customer: CustomerFeatures) -> tuple[float, list[Factor]]:
        """Exact TreeSHAP contributions per input feature, largest effect first.

        Returns the base value (log-odds of an average customer) and one factor per
        feature; the three one-hot Geography columns fold into one Geography factor.
        """
        contributions = self._booster.predict(
            xgboost.DMatrix(self.matrix_of([customer])), pred_contribs=True
        )[0]
        per_feature = dict.fromkeys(FEATURE_NAMES, 0.0)
        for column, value in zip(self._columns, contributions[:-1], strict=True):
            per_feature[column.feature] += float(value)
        rounded = {name: round(value, ANSWER_DIGITS) for name, value in per_feature.items()}
        factors = [
            Factor(
                feature=name,
                value=getattr(customer, name),
                contribution=value,
                direction=direction_of(value),
            )
            for name, value in rounded.items()
        ]
        factors.sort(key=lambda factor: abs(factor.contribution), reverse=True)
        return float(contributions[-1]), factors
