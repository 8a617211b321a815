from __future__ import annotations

import numpy as np
import pytest

from churn.model.artifact import load_verified
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.record.schema import Customer, CustomerFeatures
from churn.scoring.scorer import BULK_BATCH, Scorer
from tests.factories import make_customer


@pytest.fixture(scope="module")
def scorer_and_pipeline(trained: TrainingResult) -> tuple[Scorer, object]:
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    return Scorer(trained.tree, trained.metadata.threshold), pipeline


def test_fast_path_agrees_with_the_pipeline(scorer_and_pipeline: tuple[Scorer, object]) -> None:
    scorer, pipeline = scorer_and_pipeline
    features = synthesize(2000, seed=11)[list(CustomerFeatures.model_fields)]
    expected = pipeline.predict_proba(features)[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(scorer.probabilities(scorer.matrix(features)), expected, atol=1e-6)
    records = [CustomerFeatures.model_validate(r) for r in features.head(50).to_dict("records")]
    np.testing.assert_allclose(
        scorer.probabilities(scorer.matrix_of(records)), expected[:50], atol=1e-6
    )


def test_explanation_is_exact_and_folds_geography(
    scorer_and_pipeline: tuple[Scorer, object],
) -> None:
    scorer, _ = scorer_and_pipeline
    customer = Customer.model_validate(make_customer(Geography="Germany"))
    base, factors = scorer.explain(customer)
    assert sorted(f.feature for f in factors) == sorted(CustomerFeatures.model_fields)
    margin = base + sum(f.contribution for f in factors)
    probability = scorer.probabilities(scorer.matrix_of([customer]))[0]
    assert 1 / (1 + np.exp(-margin)) == pytest.approx(probability, abs=1e-4)
    contributions = [abs(f.contribution) for f in factors]
    assert contributions == sorted(contributions, reverse=True)


def test_bands_follow_the_threshold(scorer_and_pipeline: tuple[Scorer, object]) -> None:
    scorer, _ = scorer_and_pipeline
    t = scorer.threshold
    probabilities = np.array([t - 0.01, t, max(t, 0.5) - 1e-9, max(t, 0.5), 0.99])
    assert scorer.bands(probabilities).tolist() == ["low", "medium", "medium", "high", "high"]


def test_a_bulk_batch_on_two_threads_scores_as_on_one(trained: TrainingResult) -> None:
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    one = Scorer(trained.tree, trained.metadata.threshold)
    two = Scorer(trained.tree, trained.metadata.threshold, bulk_threads=2)
    features = synthesize(BULK_BATCH + 500, seed=12)[list(CustomerFeatures.model_fields)]
    matrix = one.matrix(features)
    expected = pipeline.predict_proba(features)[:, 1]

    np.testing.assert_array_equal(two.probabilities(matrix), one.probabilities(matrix))
    np.testing.assert_allclose(two.probabilities(matrix), expected, atol=1e-6)
