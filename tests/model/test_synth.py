from __future__ import annotations

import pandas as pd
import pytest

from churn.model.synth import COLUMNS, synthesize
from churn.record.schema import FEATURE_SPECS


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return synthesize(20_000, seed=3)


def test_same_seed_same_data() -> None:
    pd.testing.assert_frame_equal(synthesize(500, seed=1), synthesize(500, seed=1))
    assert not synthesize(500, seed=1).equals(synthesize(500, seed=2))


def test_public_layout_and_schema_ranges(customers: pd.DataFrame) -> None:
    assert tuple(customers.columns) == COLUMNS
    assert customers["CustomerId"].is_unique
    for spec in FEATURE_SPECS:
        column = customers[spec.name]
        if spec.kind == "category":
            assert set(column) == set(spec.categories)
        else:
            assert column.min() >= (spec.minimum or 0)
            assert spec.maximum is not None
            assert column.max() <= spec.maximum


def test_about_a_fifth_churn(customers: pd.DataFrame) -> None:
    assert 0.18 <= customers["Exited"].mean() <= 0.22


def test_known_relations_hold(customers: pd.DataFrame) -> None:
    rate = customers.groupby("Geography")["Exited"].mean()
    assert rate["Germany"] > rate["France"] + 0.05
    active = customers.groupby("IsActiveMember")["Exited"].mean()
    assert active[0] > active[1] + 0.05
    products = customers.groupby("NumOfProducts")["Exited"].mean()
    assert products[3] > products[1] > products[2]
    older = customers[customers["Age"] >= 50]["Exited"].mean()
    younger = customers[customers["Age"] < 35]["Exited"].mean()
    assert older > younger + 0.1
