"""Scoring with the fitted pipeline, without its per-call pandas overhead.

The pipeline's `predict_proba` builds a DataFrame, runs the ColumnTransformer and
copies data several times; for one customer that costs far more than the trees. The
`Scorer` reads the fitted one-hot encoder once (`churn.model.booster.TreeModel`),
builds the model's input matrix directly, and asks the XGBoost booster for
probabilities, or for small batches the same trees walked with NumPy
(`churn.scoring.trees`). Tests check that both agree with `pipeline.predict_proba` on
the same customers.
The risk bands are `churn.record.outcome`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xgboost

from churn.model.booster import TreeModel
from churn.record.answers import Factor
from churn.record.outcome import ANSWER_DIGITS, BANDS, direction_of, high_risk_from
from churn.record.schema import FEATURE_NAMES, CustomerFeatures
from churn.scoring.trees import TreeEnsemble

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

# Up to this many rows NumPy's tree walk beats XGBoost's fixed cost per call.
SMALL_BATCH = 64
# From this many rows (a bulk request) XGBoost may use `bulk_threads`.
BULK_BATCH = 10_000


class Scorer:
    def __init__(
        self, model: Pipeline | TreeModel, threshold: float, *, bulk_threads: int = 1
    ) -> None:
        """`model`: the fitted pipeline, or its booster and columns (a Spark executor's)."""
        self.threshold = threshold
        self.high_risk = high_risk_from(threshold)
        trees = model if isinstance(model, TreeModel) else TreeModel.from_pipeline(model)
        self._booster: xgboost.Booster = trees.booster
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
        self._columns = trees.columns

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
            return self._trees.probabilities(matrix)
        booster = self._bulk_booster if bulk and len(matrix) >= BULK_BATCH else self._booster
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)

    def score_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.probabilities(self.matrix(features))

    def score_customers(self, customers: Sequence[CustomerFeatures]) -> np.ndarray:
        return self.probabilities(self.matrix_of(customers))

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= self.threshold

    def band_codes(self, probabilities: np.ndarray) -> np.ndarray:
        """Index into BANDS for each probability."""
        return (probabilities >= self.threshold).astype(np.int8) + (
            probabilities >= self.high_risk
        ).astype(np.int8)

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
