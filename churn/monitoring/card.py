"""The model card: what the model is for, how well it did on the holdout, and why.

`build_card` computes the card's figures at training (holdout metrics overall and per
segment, calibration, mean |TreeSHAP| per feature overall and per country) and the
model's metadata keeps them, so the Bento carries them with the model. `card_document`
lays the card out once, from the metadata, as a `churn.monitoring.document.Document`,
written as Markdown (beside the model file) and as a web page (`GET /v2/model/card`).

The card shows populations, never one customer: segments (and the countries whose drivers
are shown) hold at least `MIN_CUSTOMERS` (`churn.monitoring.performance.pooled`), also
for a model whose metadata was written before that rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xgboost
from pydantic import BaseModel, Field

from churn.model.artifact import ModelMetadata
from churn.model.booster import TreeModel
from churn.monitoring.document import Document, Section, Table, figure, share, to_html, to_markdown
from churn.monitoring.drift import DRIFT_PSI, MIN_CUSTOMERS, WARN_PSI
from churn.monitoring.performance import (
    OVERALL,
    CalibrationBin,
    SegmentMetrics,
    calibration,
    calibration_error,
    pooled,
    segments,
    shown_values,
)
from churn.monitoring.profile import input_columns, no_reference_message, reference_of
from churn.record.outcome import LabelRule
from churn.record.provenance import made_with_text
from churn.record.schema import CATEGORICAL_FEATURES, FEATURE_NAMES

ALL_CUSTOMERS = "all customers"
SHAP_GROUP = "Geography"


class ModelCard(BaseModel):
    """The card's figures, as the model's metadata keeps them."""

    holdout: list[SegmentMetrics] = Field(description="Overall, then per Geography and Gender.")
    calibration: list[CalibrationBin]
    drivers: dict[str, dict[str, float]] = Field(
        description="Mean |TreeSHAP| (log-odds) per feature, for all customers and per country."
    )

    def overall(self) -> SegmentMetrics:
        return self.holdout[0]


def build_card(
    model: TreeModel,
    matrix: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    label_rule: LabelRule = ">=",
) -> ModelCard:
    """The figures on the holdout: `matrix` is its model input (`Scorer.matrix`)."""
    return ModelCard(
        holdout=segments(labels, scores, threshold, groups, label_rule),
        calibration=calibration(labels, scores),
        drivers=drivers(model, matrix, groups.get(SHAP_GROUP)),
    )


def drivers(
    model: TreeModel, matrix: np.ndarray, countries: np.ndarray | None
) -> dict[str, dict[str, float]]:
    """Mean absolute TreeSHAP contribution of each feature, overall and per country.

    Exact contributions from XGBoost, Geography's one-hot columns folded into one
    feature, as /v2/explain gives them for one customer.
    """
    contributions = model.booster.predict(xgboost.DMatrix(matrix), pred_contribs=True)[:, :-1]
    columns = input_columns(model)
    folded = np.zeros((len(matrix), len(FEATURE_NAMES)))
    for index, column in enumerate(columns):
        folded[:, FEATURE_NAMES.index(_feature_of(column))] += contributions[:, index]
    magnitude = np.abs(folded)
    chosen = {ALL_CUSTOMERS: np.ones(len(matrix), dtype=bool)}
    if countries is not None:
        values = np.asarray(countries, dtype=str)
        chosen |= {country: values == country for country in shown_values(values)}
    return {
        name: {
            feature: round(float(magnitude[rows, i].mean()), 4)
            for i, feature in enumerate(FEATURE_NAMES)
        }
        for name, rows in chosen.items()
        if rows.any()
    }


def _feature_of(column: str) -> str:
    if column in FEATURE_NAMES:
        return column
    return next(f for f in CATEGORICAL_FEATURES if column.startswith(f"{f}_"))


def card_of(metadata: ModelMetadata) -> ModelCard | None:
    return ModelCard.model_validate(metadata.model_card) if metadata.model_card else None


def card_paths(model_path: Path) -> tuple[Path, Path]:
    """Where the card is written beside the model: NAME.card.md and NAME.card.html."""
    return model_path.with_suffix(".card.md"), model_path.with_suffix(".card.html")


def write_card(metadata: ModelMetadata, model_path: Path) -> tuple[Path, Path]:
    document = card_document(metadata)
    markdown, page = card_paths(model_path)
    markdown.write_text(to_markdown(document), encoding="utf-8")
    page.write_text(to_html(document), encoding="utf-8")
    return markdown, page


def card_document(metadata: ModelMetadata) -> Document:
    card = card_of(metadata)
    sections = [_about(metadata), _threshold(metadata)]
    if card is not None:
        sections += [_performance(card), _calibration(card), _drivers(card)]
    elif metadata.metrics is not None:
        sections.append(Section("Holdout performance", [_metrics_line(metadata), _NO_CARD_FIGURES]))
    else:
        sections.append(Section("Performance", [_NO_FIGURES]))
    sections.append(_monitoring(metadata))
    return Document(f"Model card: {metadata.model_name} {metadata.model_version}", sections)


_NO_CARD_FIGURES = (
    "This model was trained before the card's per-segment figures were recorded; "
    "retrain it with `churn train` to add them."
)
_NO_FIGURES = (
    "No performance figures were recorded for this model: it was imported without "
    "reference data with outcomes (`churn import-model --reference-data`)."
)


def _about(meta: ModelMetadata) -> Section:
    libraries = ", ".join(f"{name} {version}" for name, version in meta.libraries.items())
    rows = [["Version", meta.model_version], ["Origin", meta.origin()]]
    if meta.trained_at is not None:
        rows.append(["Trained", f"{meta.trained_at} (seed {meta.seed})"])
    if meta.data_file is not None:
        rows += [
            ["Training data", f"{meta.data_file}, {meta.data_rows or 0:,} customers"],
            ["Data SHA-256", meta.data_sha256 or ""],
        ]
    if meta.metrics is not None:
        rows.append(
            [
                "Holdout",
                f"{meta.metrics.holdout_rows:,} customers (stratified 25%), "
                "never used for fitting or for the threshold",
            ]
        )
    rows += [
        ["Model file", meta.artifact_file],
        ["Model file SHA-256", meta.artifact_sha256],
        ["Libraries", libraries],
    ]
    if meta.provenance is not None:
        parity = meta.provenance.parity
        rows += [
            ["Made with", made_with_text(meta.provenance.made_with)],
            ["Imported", meta.provenance.imported_at],
            [
                "Parity",
                f"{parity.customers:,} customers ({parity.probe}): {parity.labels_differ:,} "
                f"labels differ, largest probability difference "
                f"{parity.max_abs_probability_diff:.2g} (tolerance {parity.tolerance:g})",
            ],
        ]
    return Section(
        "The model",
        [
            "Estimates the probability that a retail bank customer leaves the bank (churns), "
            "so that retention teams can call the customers most at risk. Geography one-hot "
            "encoded, then XGBoost's trees, served from XGBoost's own model file. Inputs: "
            + ", ".join(meta.features)
            + ".",
            Table(["", ""], rows),
        ],
    )


def _threshold(meta: ModelMetadata) -> Section:
    high = max(0.5, meta.threshold)
    if meta.label_rule == ">":
        flagged = f"above {meta.threshold:g} (strictly)"
        low = f"low up to and including {meta.threshold:g} (not flagged); medium above it"
    else:
        flagged = f"of {meta.threshold:g} or more"
        low = f"low below {meta.threshold:g} (not flagged); medium from {meta.threshold:g}"
    return Section(
        "Decision threshold",
        [
            f"A customer is flagged as churn at a probability {flagged}. "
            f"Why: {meta.threshold_rule}.",
            f"Risk bands: {low} to below {high:g}; high from {high:g}"
            + (" among those flagged." if meta.label_rule == ">" else "."),
        ],
    )


def _metrics_line(meta: ModelMetadata) -> str:
    m = meta.metrics
    assert m is not None  # card_document asks only then
    return (
        f"Holdout ROC-AUC {m.roc_auc:.3f}, PR-AUC {m.pr_auc:.3f}, precision {m.precision:.3f} "
        f"and recall {m.recall:.3f} at the threshold, Brier {m.brier:.3f}."
    )


def shown_segments(rows: list[SegmentMetrics]) -> list[SegmentMetrics]:
    """The segments that may be shown. A card written before the minimum kept every value:
    its small ones (and the next smallest, see `pooled`) are left out here."""
    by_group: dict[str, dict[str, int]] = {}
    for s in rows:
        if s.group != OVERALL and not s.pooled:
            by_group.setdefault(s.group, {})[s.value] = s.customers
    hidden = {(group, value) for group, counts in by_group.items() for value in pooled(counts)}
    return [s for s in rows if (s.group, s.value) not in hidden or s.pooled]


def hidden_note(rows: list[SegmentMetrics], totals: Mapping[str, int]) -> str | None:
    """What is not shown on its own, for each group whose customers number `totals`."""
    parts = []
    for group, total in totals.items():
        own = sum(s.customers for s in rows if s.group == group and not s.pooled)
        pool = next((s for s in rows if s.group == group and s.pooled), None)
        if pool is not None:
            parts.append(f"{group}: {pool.customers:,} customers in {pool.pooled} values")
        elif total > own:
            parts.append(f"{group}: {total - own:,} customers not shown")
    if not parts:
        return None
    return (
        f"A value held by fewer than {MIN_CUSTOMERS} customers is not shown on its own, nor "
        "are the next smallest, so that none can be had by subtraction; they are pooled "
        "into other where that leaves a value shown on its own. " + "; ".join(parts) + "."
    )


def _performance(card: ModelCard) -> Section:
    rows = shown_segments(card.holdout)
    notes = [
        "Each row is one segment of the holdout. Precision and recall are at the decision "
        "threshold; an empty cell cannot be computed for that segment (one outcome only, "
        "or nobody flagged)."
    ]
    if any(s.group == "Gender" for s in card.holdout):
        notes.append(
            "Gender is not an input of the model; it is shown so that anyone can check that "
            "the model serves women and men alike."
        )
    groups = dict.fromkeys(s.group for s in card.holdout if s.group != OVERALL)
    hidden = hidden_note(rows, {group: card.overall().customers for group in groups})
    notes += [hidden] if hidden else []
    return Section("Holdout performance", [*notes, segments_table(rows)])


def segments_table(rows: list[SegmentMetrics]) -> Table:
    return Table(
        [
            "segment", "customers", "churn rate", "mean predicted", "flagged", "ROC-AUC",
            "PR-AUC", "precision", "recall", "Brier",
        ],
        [
            [
                s.label, f"{s.customers:,}", share(s.churn_rate), share(s.mean_predicted),
                share(s.flagged), figure(s.roc_auc), figure(s.pr_auc), figure(s.precision),
                figure(s.recall), figure(s.brier),
            ]
            for s in rows
        ],
    )  # fmt: skip


def _calibration(card: ModelCard) -> Section:
    error = calibration_error(card.calibration)
    return Section(
        "Calibration (holdout)",
        [
            "Customers grouped by the probability the model gave them, against how many of "
            "them really churned. A well calibrated model's two columns agree: a risk of 30% "
            "means about 3 in 10 such customers leave. Expected calibration error "
            f"(customer-weighted mean gap): {figure(error)}.",
            calibration_table(card.calibration),
        ],
    )


def calibration_table(rows: list[CalibrationBin]) -> Table:
    return Table(
        ["churn probability", "customers", "mean predicted", "observed churn"],
        [
            [
                f"{row.lower:.0%}-{row.upper:.0%}",
                f"{row.customers:,}",
                share(row.mean_predicted),
                share(row.observed_rate),
            ]
            for row in rows
        ],
    )


def _drivers(card: ModelCard) -> Section:
    countries = {s.value for s in shown_segments(card.holdout) if s.group == SHAP_GROUP}
    groups = [g for g in card.drivers if g == ALL_CUSTOMERS or g in countries]
    overall = card.drivers[ALL_CUSTOMERS]
    order = sorted(overall, key=lambda feature: overall[feature], reverse=True)
    return Section(
        "What drives churn, by country",
        [
            "Mean absolute TreeSHAP contribution of each feature on the holdout, in "
            "log-odds of churn: how far the feature moves a customer's risk, up or down, on "
            "average. Exact contributions from XGBoost, as /v2/explain gives them for one "
            "customer, with Geography's one-hot columns folded into one.",
            Table(
                ["feature", *groups],
                [[f, *(f"{card.drivers[g].get(f, 0.0):.3f}" for g in groups)] for f in order],
            ),
        ],
    )


def _monitoring(meta: ModelMetadata) -> Section:
    if not meta.reference_profile:
        return Section("Drift monitoring", [no_reference_message(meta)])
    profile = reference_of(meta)
    return Section(
        "Drift monitoring",
        [
            f"The model's metadata holds a reference profile of the {profile.rows:,} training "
            "customers: bins per feature (a bin per value for features with few values, "
            "deciles otherwise, a bin per country) and how many customers fell in each, but "
            f"no customer's values; the score's bins are counted on {profile.score_source}. "
            "The service compares every customer it scores with it (GET /v2/drift, and "
            "gauges on /metrics), and `churn drift FILE` compares a file.",
            f"Statistic: the population stability index (PSI). Status ok below {WARN_PSI:g}, "
            f"warn from {WARN_PSI:g}, drift from {DRIFT_PSI:g}; insufficient with fewer than "
            f"{MIN_CUSTOMERS} customers in the window.",
            Table(
                ["feature", "bins"],
                [[bins.name, ", ".join(bins.labels())] for bins in profile.all_bins()],
            ),
        ],
    )
