"""The reference profile and the one binning: checked against a plain per-feature binning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.model.artifact import load_verified
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.monitoring.profile import Binner, ReferenceProfile, input_columns
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES
from churn.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def profile(trained: TrainingResult) -> ReferenceProfile:
    return ReferenceProfile.model_validate(trained.metadata.reference_profile)


@pytest.fixture(scope="module")
def scorer_and_columns(trained: TrainingResult) -> tuple[Scorer, list[str]]:
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    return Scorer(pipeline, trained.metadata.threshold), input_columns(pipeline)


def customers(rows: int, seed: int) -> pd.DataFrame:
    features = synthesize(rows, seed=seed)[list(FEATURE_NAMES)]
    features["Geography"] = pd.Categorical(features["Geography"], categories=list(GEOGRAPHIES))
    return features


def plain_counts(
    profile: ReferenceProfile, features: pd.DataFrame, scores: np.ndarray
) -> dict[str, np.ndarray]:
    """Each feature binned on its own, the obvious way."""
    counts = {}
    for bins in profile.features:
        values = features[bins.name]
        if bins.kind == "category":
            counts[bins.name] = np.array([(values == c).sum() for c in bins.categories])
        else:
            where = np.searchsorted(bins.edges, values.astype(np.float32), side="right")
            counts[bins.name] = np.bincount(where, minlength=len(bins.edges) + 1)
    where = np.searchsorted(profile.score.edges, scores, side="right")
    counts["score"] = np.bincount(where, minlength=len(profile.score.edges) + 1)
    return counts


def test_every_training_customer_is_in_one_bin_of_each_feature(
    profile: ReferenceProfile, trained: TrainingResult
) -> None:
    assert profile.rows == trained.metadata.data_rows == 3000
    for bins in profile.all_bins():
        assert sum(bins.counts) == profile.rows, bins.name
        assert len(bins.counts) == len(bins.labels()), bins.name
        assert bins.edges == sorted(set(bins.edges)), bins.name
    assert [b.name for b in profile.features] == list(FEATURE_NAMES)


def test_bins_are_values_for_few_valued_features_and_deciles_otherwise(
    profile: ReferenceProfile,
) -> None:
    by_name = {b.name: b for b in profile.all_bins()}
    assert by_name["NumOfProducts"].labels() == ["1", "2", "3", "4"]
    assert by_name["HasCrCard"].labels() == ["0", "1"]
    assert by_name["Tenure"].labels()[-1] == "10-60"  # the last bin takes what training never saw
    assert by_name["Geography"].labels() == list(GEOGRAPHIES)
    for name in ("CreditScore", "Age", "EstimatedSalary", "score"):
        shares = np.array(by_name[name].counts) / profile.rows
        assert len(shares) >= 8, name
        assert shares.max() < 0.2, name  # deciles, give or take ties


def test_binning_all_columns_at_once_equals_binning_each_on_its_own(
    profile: ReferenceProfile, scorer_and_columns: tuple[Scorer, list[str]]
) -> None:
    scorer, columns = scorer_and_columns
    features = customers(5000, seed=31)
    # Values the training data never had: the edges of the schema.
    features.loc[0, ["Age", "Tenure", "Balance", "CreditScore"]] = [100, 60, 1e8, 300]
    features.loc[1, ["Age", "Tenure", "Balance", "CreditScore"]] = [18, 0, 0.0, 900]
    matrix = scorer.matrix(features)
    scores = scorer.probabilities(matrix)
    binner = Binner(profile, columns)
    counted = binner.split(binner.counts(matrix, scores))
    expected = plain_counts(profile, features, scores)
    assert counted.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(counted[name], values, err_msg=name)
    assert binner.customers(binner.counts(matrix, scores)) == 5000


def test_one_row_at_a_time_gives_the_same_counts(
    profile: ReferenceProfile, scorer_and_columns: tuple[Scorer, list[str]]
) -> None:
    scorer, columns = scorer_and_columns
    matrix = scorer.matrix(customers(200, seed=32))
    scores = scorer.probabilities(matrix)
    binner = Binner(profile, columns)
    one_by_one = sum(binner.counts(matrix[i : i + 1], scores[i : i + 1]) for i in range(200))
    np.testing.assert_array_equal(one_by_one, binner.counts(matrix, scores))
