from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost

from churn.model.artifact import load_verified
from churn.model.booster import TreeModel
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.record.schema import Customer, CustomerFeatures
from churn.scoring.scorer import BULK_BATCH, SMALL_BATCH, Scorer
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


def test_bands_under_the_strict_rule_flip_with_the_label(trained: TrainingResult) -> None:
    scorer = Scorer(trained.tree, 0.5, label_rule=">")
    probabilities = np.array([0.49, 0.5, np.nextafter(0.5, 1), 0.99])
    assert scorer.labels(probabilities).tolist() == [False, False, True, True]
    assert scorer.bands(probabilities).tolist() == ["low", "low", "high", "high"]
    low_threshold = Scorer(trained.tree, 0.3, label_rule=">")
    probabilities = np.array([0.3, np.nextafter(0.3, 1), 0.5])
    assert low_threshold.bands(probabilities).tolist() == ["low", "medium", "high"]


def _with_margin(tree: TreeModel, margin: float) -> TreeModel:
    """The model's trees with every leaf 0 but the first tree's, which are `margin`, and a
    base score of 0.5: every customer's margin is exactly `margin` (float32)."""
    model = json.loads(bytes(tree.booster.save_raw("json")))
    learner = model["learner"]
    learner["learner_model_param"]["base_score"] = "5E-1"
    for index, one in enumerate(learner["gradient_booster"]["model"]["trees"]):
        for node, left in enumerate(one["left_children"]):
            if left == -1:
                value = margin if index == 0 else 0.0
                one["split_conditions"][node] = one["base_weights"][node] = value
    booster = xgboost.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    return TreeModel(booster, tree.columns)


# 0.5 exactly; margins whose float32 probability XGBoost rounds to 0.5 though they are
# not 0 (float64 says otherwise); the smallest margins it puts on either side; clear cases.
BOUNDARY_MARGINS = [0.0, 1e-8, -1e-8, 3e-8, -3e-8, 6e-8, 1.2e-7, -1.2e-7, 1e-3, -1e-3]


@pytest.mark.parametrize("margin", BOUNDARY_MARGINS)
@pytest.mark.parametrize("rows", [1, 7, SMALL_BATCH + 1])
def test_labels_at_the_boundary_are_xgboosts_own(
    trained: TrainingResult, margin: float, rows: int
) -> None:
    """On both paths (NumPy's walk up to SMALL_BATCH rows, XGBoost above) the label is
    XGBoost's: predict() for ">" at 0.5, its float32 probability for ">="."""
    from xgboost import XGBClassifier

    model = _with_margin(trained.tree, margin)
    features = synthesize(rows, seed=13)[list(CustomerFeatures.model_fields)]
    strict = Scorer(model, 0.5, label_rule=">")
    matrix = strict.matrix(features)
    classifier = XGBClassifier()
    classifier.load_model(bytearray(model.booster.save_raw("ubj")))
    predicted = classifier.predict(matrix)
    own = classifier.predict_proba(matrix)[:, 1]
    assert own.dtype == np.float32
    assert strict.labels(strict.probabilities(matrix)).tolist() == (predicted == 1).tolist()
    at_or_above = Scorer(model, 0.5)
    labels = at_or_above.labels(at_or_above.probabilities(matrix))
    assert labels.tolist() == (own >= 0.5).tolist()


def test_the_scorer_leaves_its_callers_booster_as_it_was(trained: TrainingResult) -> None:
    # Training builds its Scorer before it saves the pipeline whose booster this is.
    booster = trained.tree.booster.copy()
    booster.set_param({"nthread": 3})
    before = booster.save_config()
    scorer = Scorer(TreeModel(booster, trained.tree.columns), 0.5, bulk_threads=2)
    scorer.probabilities(np.zeros((BULK_BATCH, len(trained.tree.columns)), dtype=np.float32))
    assert booster.save_config() == before
    assert json.loads(before)["learner"]["generic_param"]["nthread"] == "3"
