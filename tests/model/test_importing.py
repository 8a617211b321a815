"""The model's side of an import (churn.model.importing) that needs no exporter run: the
probe customers and the version read from a file's name. The import job, end to end, is
tests/workflows/test_importing.py."""

from __future__ import annotations

import pytest

from churn.model.importing import probe_customers, version_from_name
from churn.record.schema import FEATURE_SPECS


def test_the_probe_covers_every_category_and_each_bound() -> None:
    probe = probe_customers()
    assert len(probe) == 3000
    assert probe.equals(probe_customers())  # seeded
    for spec in FEATURE_SPECS:
        if spec.kind == "category":
            assert set(probe[spec.name]) == set(spec.categories)
        else:
            assert probe[spec.name].min() == spec.minimum
            assert probe[spec.name].max() == spec.maximum


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("churn_prediction_model_v1_0.joblib", "1.0"),
        ("model_v2_10_1.joblib", "2.10.1"),
        ("model.joblib", None),
    ],
)
def test_version_from_the_file_name(name: str, version: str | None) -> None:
    assert version_from_name(name) == version
