from __future__ import annotations

import numpy as np
import pandas as pd
from xgboost import Booster

from churn.model.artifact import load_verified
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES
from churn.scoring.scorer import SMALL_BATCH, Scorer
from churn.scoring.trees import TreeEnsemble


def model_input(trained: TrainingResult, rows: int, seed: int) -> tuple[np.ndarray, Booster]:
    """Synthetic customers as the booster's input matrix, and the booster."""
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    scorer = Scorer(trained.tree, trained.metadata.threshold)
    features = synthesize(rows, seed=seed)[list(FEATURE_NAMES)]
    features["Geography"] = pd.Categorical(features["Geography"], categories=list(GEOGRAPHIES))
    return scorer.matrix(features), pipeline.named_steps["classifier"].get_booster()


def test_numpy_trees_match_xgboost_exactly(trained: TrainingResult) -> None:
    matrix, booster = model_input(trained, 5000, seed=21)
    expected = booster.inplace_predict(matrix)
    np.testing.assert_allclose(TreeEnsemble(booster).probabilities(matrix), expected, atol=1e-6)
    # Values exactly on a split go right, as in XGBoost (x < split goes left).
    edges = matrix[:50].copy()
    model = TreeEnsemble(booster)
    edges[:, 3] = model._split[model._feature == 3][:1] if (model._feature == 3).any() else 0
    np.testing.assert_allclose(
        model.probabilities(edges), booster.inplace_predict(edges), atol=1e-6
    )


def test_scorer_uses_both_paths_with_the_same_answers(trained: TrainingResult) -> None:
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    scorer = Scorer(trained.tree, trained.metadata.threshold)
    features = synthesize(SMALL_BATCH + 1, seed=5)[list(FEATURE_NAMES)]
    expected = pipeline.predict_proba(features)[:, 1]
    features["Geography"] = pd.Categorical(features["Geography"], categories=list(GEOGRAPHIES))
    matrix = scorer.matrix(features)
    small = scorer.probabilities(matrix[:SMALL_BATCH])
    large = scorer.probabilities(matrix)
    np.testing.assert_allclose(small, expected[:SMALL_BATCH], atol=1e-6)
    np.testing.assert_allclose(large, expected, atol=1e-6)


def test_one_row_at_a_time_matches_xgboost(trained: TrainingResult) -> None:
    # A single row takes its own path (every node tested at once).
    matrix, booster = model_input(trained, 300, seed=8)
    model = TreeEnsemble(booster)
    one_by_one = np.concatenate(
        [model.probabilities(matrix[i : i + 1]) for i in range(len(matrix))]
    )
    np.testing.assert_allclose(one_by_one, booster.inplace_predict(matrix), atol=1e-6)
    np.testing.assert_array_equal(one_by_one, model.probabilities(matrix))
