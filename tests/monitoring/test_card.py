"""The model card written at training, and what the model's metadata keeps for it."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest

from churn.model.artifact import MODELS_DIR, ModelMetadata, metadata_path_for, sha256_file
from churn.model.store import load_model, save_once
from churn.model.training import TrainingResult
from churn.monitoring.card import card_document, card_of, card_paths
from churn.monitoring.document import to_html, to_markdown
from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.performance import segment_metrics, segments
from tests.conftest import run_churn

BUNDLED = MODELS_DIR / "churn_prediction_model_v1_0.joblib"


def test_training_writes_the_card_beside_the_model(trained: TrainingResult) -> None:
    markdown, page = card_paths(trained.model_path)
    text = markdown.read_text(encoding="utf-8")
    for heading in (
        "## Holdout performance",
        "## Calibration (holdout)",
        "## What drives churn, by country",
        "## Decision threshold",
        "## Drift monitoring",
    ):
        assert heading in text
    meta = trained.metadata
    for segment in ("all customers", "Geography = France", "Geography = Germany", "Gender = Male"):
        assert f"| {segment} |" in text
    assert meta.data_sha256 is not None
    assert meta.data_sha256 in text
    assert f"{meta.threshold:g} or more" in text
    assert meta.threshold_rule in text
    assert html.escape(meta.threshold_rule) in page.read_text(encoding="utf-8")
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_cards_figures_agree_with_the_holdout_metrics(trained: TrainingResult) -> None:
    card = card_of(trained.metadata)
    assert card is not None
    overall, metrics = card.overall(), trained.metadata.metrics
    assert metrics is not None
    assert overall.customers == metrics.holdout_rows
    assert overall.roc_auc == pytest.approx(metrics.roc_auc, abs=1e-6)
    assert overall.precision == pytest.approx(metrics.precision, abs=1e-6)
    assert overall.recall == pytest.approx(metrics.recall, abs=1e-6)
    assert overall.brier == pytest.approx(metrics.brier, abs=1e-6)
    countries = [s for s in card.holdout if s.group == "Geography"]
    assert [s.value for s in countries] == ["France", "Germany", "Spain"]
    assert sum(s.customers for s in countries) == metrics.holdout_rows
    assert sum(row.customers for row in card.calibration) == metrics.holdout_rows
    assert set(card.drivers) == {"all customers", "France", "Germany", "Spain"}
    # The synthetic data's churn depends on age and products, not on the card or salary.
    drivers = card.drivers["all customers"]
    assert drivers["Age"] > drivers["HasCrCard"]
    assert drivers["NumOfProducts"] > drivers["EstimatedSalary"]


def test_markdown_and_html_are_one_layout(trained: TrainingResult) -> None:
    document = card_document(trained.metadata)
    page, markdown = to_html(document), to_markdown(document)
    for section in document.sections:
        assert f"## {section.title}" in markdown
        assert f"<h2>{html.escape(section.title)}</h2>" in page


def test_a_model_without_card_figures_still_has_a_card(trained: TrainingResult) -> None:
    older = trained.metadata.model_copy(update={"model_card": {}, "reference_profile": {}})
    text = to_markdown(card_document(older))
    assert "retrain it" in text
    assert "no reference profile" in text


def test_the_store_keeps_the_profile_and_the_card(
    trained: TrainingResult, model_store: Path
) -> None:
    save_once(trained.tree, trained.metadata)
    stored = load_model().metadata
    assert stored.reference_profile == trained.metadata.reference_profile
    assert stored.model_card == trained.metadata.model_card


def test_the_bundled_model_has_its_card() -> None:
    meta = ModelMetadata.read(metadata_path_for(BUNDLED))
    assert meta.reference_profile
    assert meta.model_card
    markdown, page = card_paths(BUNDLED)
    assert markdown.read_text(encoding="utf-8") == to_markdown(card_document(meta))
    assert page.read_text(encoding="utf-8") == to_html(card_document(meta))


@pytest.mark.slow
def test_make_model_still_gives_the_bundled_model_file_byte_for_byte(tmp_path: Path) -> None:
    # `make model`'s two commands, each in a process of its own as make runs them: a
    # process that has unpickled another model first pickles the same one in other bytes
    # (its booster's JSON is the same). The health figures come after the model is saved.
    data = tmp_path / "synthetic_customers.csv"
    models = tmp_path / "models"
    for command in (
        ("data", "synth", "--rows", "10000", "--seed", "42", "--out", str(data)),
        ("train", "--data", str(data), "--out", str(models), "--seed", "42", "--version", "1.0"),
    ):
        done = run_churn(*command)
        assert done.returncode == 0, done.stderr
    model_path = models / BUNDLED.name
    assert sha256_file(model_path) == sha256_file(BUNDLED)
    bundled = ModelMetadata.read(metadata_path_for(BUNDLED))
    made = ModelMetadata.read(metadata_path_for(model_path))
    assert made.reference_profile == bundled.reference_profile
    assert made.model_card == bundled.model_card


# --- Populations, never one customer ----------------------------------------------------

ONE_CUSTOMER = "Schmidt 15588458"


def test_a_segment_under_the_minimum_is_pooled_never_shown() -> None:
    rng = np.random.default_rng(3)
    labels, scores = rng.integers(0, 2, 1000), rng.random(1000)
    gender = np.where(np.arange(1000) < 600, "Male", "Female")
    gender[0] = ONE_CUSTOMER
    found = segments(labels, scores, 0.5, {"Gender": gender})
    assert [(s.label, s.customers) for s in found] == [
        ("all customers", 1000),
        ("Gender = Male", 599),
        # Female alone would be the total less Male less Schmidt: pooled with Schmidt.
        ("Gender = other (2 values)", 401),
    ]
    assert all(s.customers >= MIN_CUSTOMERS for s in found)
    # A group with no value of the minimum's size shows no segment at all.
    few = segments(labels[:150], scores[:150], 0.5, {"Gender": np.arange(150).astype(str)})
    assert [s.label for s in few] == ["all customers"]


def test_a_card_written_before_the_minimum_hides_its_small_segments(
    trained: TrainingResult,
) -> None:
    # The metadata of a model trained on dirty data before the rule: every value kept.
    card = card_of(trained.metadata)
    assert card is not None
    rng = np.random.default_rng(5)
    alone = segment_metrics("Gender", ONE_CUSTOMER, np.array([0]), np.array([0.662]), 0.5)
    tiny = segment_metrics("Geography", "Atlantis", rng.integers(0, 2, 9), rng.random(9), 0.5)
    dirty = card.model_copy(update={"holdout": [*card.holdout, alone, tiny]})
    dirty.drivers["Atlantis"] = dict.fromkeys(dirty.drivers["all customers"], 0.5)
    meta = trained.metadata.model_copy(update={"model_card": dirty.model_dump(mode="json")})
    document = card_document(meta)
    for text in (to_markdown(document), to_html(document)):
        assert ONE_CUSTOMER not in text
        assert "Atlantis" not in text
        assert "66.2%" not in text
        assert "Gender = Female" not in text  # the smaller of the two, by subtraction
        assert "Gender = Male" in text
        assert "Gender: " in text
        assert "customers not shown" in text
