"""XGBoost's version read from a booster's raw model, in each form a pickle holds it."""

from __future__ import annotations

from importlib import metadata

import pytest

from churn.model.training import TrainingResult
from churn.model.xgboost_version import xgboost_version_of
from churn.record.errors import ModelIntegrityError

XGBOOST = metadata.version("xgboost-cpu")


def test_xgboost_versions_from_each_model_form(trained: TrainingResult) -> None:
    booster = trained.tree.booster
    assert xgboost_version_of(bytes(booster.save_raw("ubj"))) == XGBOOST
    assert xgboost_version_of(bytes(booster.save_raw("json"))) == XGBOOST
    # XGBoost 1.0-1.5 pickled a binary model followed by its JSON configuration.
    legacy = b"CONFIG-offset:\x00\x01binary\xff" + b'{"learner": {}, "version": [1, 5, 2]}'
    assert xgboost_version_of(legacy) == "1.5.2"
    with pytest.raises(ModelIntegrityError, match="before 1.0"):
        xgboost_version_of(b"\x00\x00binary model of XGBoost 0.90")
