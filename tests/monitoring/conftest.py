"""Customers for the model-health tests (drawn like the training data, and shifted), and the
parts of a live profile with a clock the test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.monitoring.profile import Binner, ReferenceProfile, input_columns
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES
from churn.scoring.scorer import Scorer

SHIFTED_AGE = 20


def like_training(rows: int, seed: int) -> pd.DataFrame:
    """Customers in the public layout, drawn as the bundled model's training data was."""
    return synthesize(rows, seed=seed)


def customers(rows: int, seed: int) -> pd.DataFrame:
    """The model's features of `like_training` customers, Geography as a category."""
    features = like_training(rows, seed)[list(FEATURE_NAMES)]
    features["Geography"] = pd.Categorical(features["Geography"], categories=list(GEOGRAPHIES))
    return features


def shifted(customers: pd.DataFrame) -> pd.DataFrame:
    """The same customers 20 years older (the schema stops at 100) and all in Germany."""
    moved = customers.copy()
    moved["Age"] = np.minimum(moved["Age"] + SHIFTED_AGE, 100)
    moved["Geography"] = "Germany"
    return moved


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


class Clock:
    """Time as the test sets it, for the rolling window."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def parts(trained: TrainingResult) -> tuple[Scorer, ReferenceProfile, Binner]:
    profile = ReferenceProfile.model_validate(trained.metadata.reference_profile)
    return Scorer(trained.tree, 0.3), profile, Binner(profile, input_columns(trained.tree))
