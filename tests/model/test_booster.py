"""The booster file Spark's executors score with: the pipeline's answers, and no pickle."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import xgboost

from churn.model.artifact import load_verified
from churn.model.booster import Column, TreeModel
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.record.errors import ModelIntegrityError
from churn.record.schema import CustomerFeatures
from churn.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def pipeline(trained: TrainingResult) -> object:
    return load_verified(trained.model_path, trained.metadata.artifact_sha256)


def test_the_file_scores_as_the_pipeline_does(pipeline: object, trained: TrainingResult) -> None:
    features = synthesize(3000, seed=5)[list(CustomerFeatures.model_fields)]
    expected = pipeline.predict_proba(features)[:, 1]  # type: ignore[attr-defined]
    from_file = Scorer(TreeModel.from_bytes(TreeModel.from_pipeline(pipeline).to_bytes()), 0.5)
    from_pipeline = Scorer(TreeModel.from_pipeline(pipeline), 0.5)
    matrix = from_pipeline.matrix(features)
    np.testing.assert_array_equal(
        from_file.probabilities(matrix), from_pipeline.probabilities(matrix)
    )
    np.testing.assert_allclose(from_file.probabilities(matrix), expected, atol=1e-6)


def test_the_file_is_xgboosts_own_format_not_a_pickle(pipeline: object) -> None:
    data = TreeModel.from_pipeline(pipeline).to_bytes()
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    columns = json.loads(booster.attr("churn_input_columns") or "")
    assert ["Geography", "Germany"] in columns
    assert ["Age", None] in columns
    # Loading takes the columns back out of the booster's attributes.
    assert TreeModel.from_bytes(data).booster.attr("churn_input_columns") is None


def test_bytes_that_are_not_a_churn_booster_are_refused(pipeline: object) -> None:
    with pytest.raises(ModelIntegrityError, match="Not a churn model's booster file"):
        TreeModel.from_bytes(b"\x80\x04not a model")
    bare = pipeline.named_steps["classifier"].get_booster()  # type: ignore[attr-defined]
    with pytest.raises(ModelIntegrityError, match="Not a churn model's booster file"):
        TreeModel.from_bytes(bytes(bare.save_raw("ubj")))  # no columns recorded


def test_columns_outside_the_customer_schema_are_refused(pipeline: object) -> None:
    model = TreeModel.from_pipeline(pipeline)
    renamed = tuple(
        Column(c.feature, "Mars") if c.category == "Spain" else c for c in model.columns
    )
    data = TreeModel(model.booster, renamed).to_bytes()
    with pytest.raises(ModelIntegrityError, match="Geography_Mars is not one of"):
        TreeModel.from_bytes(data)
