"""The reference profile and the one binning: checked against a plain per-feature binning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.model.training import TrainingResult
from churn.monitoring.profile import SPAN, Binner, ReferenceProfile, input_columns
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES
from churn.scoring.scorer import Scorer
from tests.monitoring.conftest import customers


@pytest.fixture(scope="module")
def profile(trained: TrainingResult) -> ReferenceProfile:
    return ReferenceProfile.model_validate(trained.metadata.reference_profile)


@pytest.fixture(scope="module")
def scorer_and_columns(trained: TrainingResult) -> tuple[Scorer, list[str]]:
    return Scorer(trained.tree, trained.metadata.threshold), input_columns(trained.tree)


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


def test_many_rows_bin_as_a_single_customer_does_at_and_around_every_edge(
    profile: ReferenceProfile, scorer_and_columns: tuple[Scorer, list[str]]
) -> None:
    """Many rows are binned column by column (whole-valued columns by counting values);
    a single customer's row by one search over every column's shifted edges
    (`LiveProfile.observe`). The two must agree, also on values at an edge or one float
    step either side of it, and on whole-valued columns given values that are not."""
    scorer, columns = scorer_and_columns
    binner = Binner(profile, columns)
    matrix = scorer.matrix(customers(3000, seed=33))
    scores = scorer.probabilities(matrix)
    rng = np.random.default_rng(34)
    values = np.column_stack([scores, matrix])
    for column in range(binner.columns):
        own = binner.edges[
            (binner.edges >= binner.shift[column])
            & (binner.edges < binner.shift[column] + SPAN / 2)
        ]
        edges = own - binner.shift[column]
        near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        if column:  # the matrix is float32: its values are float32 values
            near = near.astype(np.float32).astype(np.float64)
        near = near[(near >= 0) & (near < SPAN / 2)]
        values[rng.integers(0, len(values), 600), column] = rng.choice(near, 600)
    one_search = np.bincount(
        np.searchsorted(binner.edges, (values + binner.shift).ravel(), side="right"),
        minlength=binner.width,
    )
    by_column = binner.counts(values[:, 1:].astype(np.float32), values[:, 0])
    np.testing.assert_array_equal(by_column, one_search)
