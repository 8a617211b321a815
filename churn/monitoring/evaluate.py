"""`churn evaluate PREDICTIONS OUTCOMES`: how the model did, once the outcomes are known.

Scored customers (from /v2/predict-file, as CSV or JSON, or the Spark job's Parquet)
are joined on CustomerId with what happened to them later (CustomerId, Exited). The
report gives ROC-AUC, precision and recall at the model's threshold and calibration,
overall and per Geography, beside the model card's holdout figures.

Every row of both files is accounted for. A row that cannot be used (no id, not scored,
an id given twice, an outcome that is not 0 or 1, an id with nothing to join) is
counted in the summary and listed with its reason in `unmatched.csv`; none is dropped
silently. Geography comes from the predictions, the outcomes, or `--customers` (the
file that was scored), whichever has it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import BaseModel, Field

from churn.model.artifact import ModelMetadata
from churn.model.store import stored_model_metadata, verify_stored
from churn.monitoring.card import (
    ALL_CUSTOMERS,
    calibration_table,
    card_of,
    hidden_note,
    shown_segments,
)
from churn.monitoring.document import Document, Section, Table, figure, to_html, to_markdown
from churn.monitoring.files import plain_ids, read_text_table
from churn.monitoring.performance import (
    CalibrationBin,
    SegmentMetrics,
    calibration,
    calibration_error,
    segments,
)
from churn.record.schema import CUSTOMER_ID, TARGET
from churn.record.spreadsheet import spreadsheet_safe

PROBABILITY = "churn_probability"
GEOGRAPHY = "Geography"
STATUS = "status"
UNMATCHED = "unmatched.csv"


class Accounting(BaseModel):
    """Where every row of both files went: the two sums equal the two files' rows."""

    predictions_rows: int
    predictions_without_id: int
    predictions_not_scored: int = Field(description="Rejected rows, or no probability 0-1.")
    predictions_duplicate_id: int = Field(description="Rows whose id is given more than once.")
    predictions_without_outcome: int
    outcomes_rows: int
    outcomes_without_id: int
    outcomes_invalid: int = Field(description=f"Rows whose {TARGET} is not 0 or 1.")
    outcomes_duplicate_id: int
    outcomes_without_prediction: int
    matched: int = Field(description="Customers with a prediction and an outcome.")
    matched_without_geography: int


class Evaluation(BaseModel):
    model: str
    model_version: str
    threshold: float
    accounting: Accounting
    now: list[SegmentMetrics] = Field(description="On the outcomes: overall, then per country.")
    holdout: list[SegmentMetrics] = Field(description="The model card's, at training.")
    calibration: dict[str, list[CalibrationBin]] = Field(
        description="On the outcomes, for all customers and per country."
    )
    holdout_calibration: list[CalibrationBin]

    def summary(self) -> dict[str, Any]:
        overall = self.now[0].model_dump() if self.now else None
        return {
            "model": self.model,
            "model_version": self.model_version,
            "threshold": self.threshold,
            **self.accounting.model_dump(),
            "overall": overall,
        }


@dataclass
class _Kept:
    """Rows of one file that can be joined, and the others with their reasons."""

    frame: pd.DataFrame
    excluded: list[pd.DataFrame]

    def exclude(self, mask: pd.Series, source: str, reason: str | pd.Series) -> int:
        dropped = self.frame[mask]
        self.excluded.append(
            pd.DataFrame({CUSTOMER_ID: dropped[CUSTOMER_ID], "source": source, "reason": reason})
        )
        self.frame = self.frame[~mask]
        return int(mask.sum())


def _duplicates(kept: _Kept, source: str) -> int:
    counts = kept.frame[CUSTOMER_ID].map(kept.frame[CUSTOMER_ID].value_counts())
    return kept.exclude(
        counts > 1,
        source,
        "the id is given "
        + counts[counts > 1].astype(str)
        + " times; which row is meant is unclear",
    )


def evaluate(
    predictions: Path,
    outcomes: Path,
    metadata: ModelMetadata,
    *,
    model: str,
    customers: Path | None = None,
) -> tuple[Evaluation, pd.DataFrame]:
    """The evaluation, and every row not used with its source and reason."""
    scored = _Kept(
        read_text_table(predictions, [CUSTOMER_ID, PROBABILITY], [STATUS, GEOGRAPHY]), []
    )
    known = _Kept(read_text_table(outcomes, [CUSTOMER_ID, TARGET], [GEOGRAPHY]), [])
    scored.frame[CUSTOMER_ID] = plain_ids(scored.frame[CUSTOMER_ID])

    predictions_rows, outcomes_rows = len(scored.frame), len(known.frame)
    no_id = "no CustomerId"
    predictions_without_id = scored.exclude(scored.frame[CUSTOMER_ID] == "", "predictions", no_id)
    outcomes_without_id = known.exclude(known.frame[CUSTOMER_ID] == "", "outcomes", no_id)

    probability = pd.to_numeric(scored.frame[PROBABILITY], errors="coerce")
    rejected = scored.frame.get(STATUS, pd.Series("", index=scored.frame.index)).isin(["rejected"])
    unusable = rejected | ~probability.between(0, 1)
    reasons = pd.Series("no churn_probability from 0 to 1", index=scored.frame.index)
    not_scored = scored.exclude(
        unusable, "predictions", reasons.mask(rejected, "rejected when scored")[unusable]
    )
    label = known.frame[TARGET]
    outcomes_invalid = known.exclude(~label.isin(["0", "1"]), "outcomes", f"{TARGET} is not 0 or 1")
    predictions_duplicate_id = _duplicates(scored, "predictions")
    outcomes_duplicate_id = _duplicates(known, "outcomes")

    joined = scored.frame.merge(
        known.frame, on=CUSTOMER_ID, how="outer", suffixes=("", "_outcome"), indicator=True
    )
    without_outcome = joined["_merge"] == "left_only"
    without_prediction = joined["_merge"] == "right_only"
    scored.exclude(
        scored.frame[CUSTOMER_ID].isin(joined.loc[without_outcome, CUSTOMER_ID]),
        "predictions",
        "no outcome for this id",
    )
    known.exclude(
        known.frame[CUSTOMER_ID].isin(joined.loc[without_prediction, CUSTOMER_ID]),
        "outcomes",
        "no prediction for this id",
    )
    matched = joined[joined["_merge"] == "both"]
    geography = _geography(matched, customers)

    labels = matched[TARGET].astype(np.int64).to_numpy()
    scores = pd.to_numeric(matched[PROBABILITY]).to_numpy(dtype=np.float64)
    groups = {GEOGRAPHY: geography[geography != ""]} if (geography != "").any() else {}
    rule = metadata.label_rule
    now = segments(labels, scores, metadata.threshold, {}, rule)
    if groups:
        has = geography != ""
        now += segments(labels[has], scores[has], metadata.threshold, groups, rule)[1:]
    per_country = {ALL_CUSTOMERS: calibration(labels, scores)} if len(labels) else {}
    for country in (s.value for s in now if s.group == GEOGRAPHY and not s.pooled):
        chosen = geography == country
        per_country[country] = calibration(labels[chosen], scores[chosen])

    card = card_of(metadata)
    evaluation = Evaluation(
        model=model,
        model_version=metadata.model_version,
        threshold=metadata.threshold,
        accounting=Accounting(
            predictions_rows=predictions_rows,
            predictions_without_id=predictions_without_id,
            predictions_not_scored=not_scored,
            predictions_duplicate_id=predictions_duplicate_id,
            predictions_without_outcome=int(without_outcome.sum()),
            outcomes_rows=outcomes_rows,
            outcomes_without_id=outcomes_without_id,
            outcomes_invalid=outcomes_invalid,
            outcomes_duplicate_id=outcomes_duplicate_id,
            outcomes_without_prediction=int(without_prediction.sum()),
            matched=len(matched),
            matched_without_geography=int((geography == "").sum()),
        ),
        now=now,
        holdout=shown_segments(card.holdout) if card else [],
        calibration=per_country,
        holdout_calibration=card.calibration if card else [],
    )
    excluded = pd.concat([*scored.excluded, *known.excluded], ignore_index=True)
    return evaluation, excluded


def stored_metadata(tag: str) -> tuple[ModelMetadata, str]:
    """A stored model's metadata and full tag; its booster file is checked, not loaded."""
    model = verify_stored(tag)
    return stored_model_metadata(model), str(model.tag)


def _geography(matched: pd.DataFrame, customers: Path | None) -> np.ndarray:
    """Each matched customer's country, "" where no file gives one."""
    found = pd.Series("", index=matched.index, dtype=object)
    for column in (GEOGRAPHY, f"{GEOGRAPHY}_outcome"):
        if column in matched.columns:
            found = found.where(found != "", matched[column].fillna(""))
    if customers is not None:
        table = read_text_table(customers, [CUSTOMER_ID, GEOGRAPHY], [])
        table = table[table[CUSTOMER_ID] != ""].drop_duplicates(CUSTOMER_ID, keep=False)
        looked_up = matched[CUSTOMER_ID].map(table.set_index(CUSTOMER_ID)[GEOGRAPHY]).fillna("")
        found = found.where(found != "", looked_up)
    return found.astype(str).to_numpy()


def write_evaluation(evaluation: Evaluation, excluded: pd.DataFrame, out: Path) -> list[Path]:
    """evaluation.json, unmatched.csv and, when any customer joined, evaluation.md and .html,
    in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"evaluation.json": evaluation.model_dump_json(indent=2) + "\n"}
    if evaluation.now:
        document = evaluation_document(evaluation)
        written |= {"evaluation.md": to_markdown(document), "evaluation.html": to_html(document)}
    for name, text in written.items():
        (out / name).write_text(text, encoding="utf-8")
    ids = pa.array(excluded[CUSTOMER_ID].astype(str).tolist(), type=pa.string())
    table = pa.table(
        {
            CUSTOMER_ID: spreadsheet_safe(ids),
            "source": excluded["source"].astype(str).tolist(),
            "reason": excluded["reason"].astype(str).tolist(),
        }
    )
    pacsv.write_csv(table, out / UNMATCHED)
    return [out / name for name in [*written, UNMATCHED]]


def evaluation_document(evaluation: Evaluation) -> Document:
    a = evaluation.accounting
    holdout = {(s.group, s.value): s for s in evaluation.holdout if not s.pooled}
    where = [
        ("rows in the file", a.predictions_rows, a.outcomes_rows),
        ("joined", a.matched, a.matched),
        ("no id", a.predictions_without_id, a.outcomes_without_id),
        ("not scored / not 0 or 1", a.predictions_not_scored, a.outcomes_invalid),
        ("id given more than once", a.predictions_duplicate_id, a.outcomes_duplicate_id),
        ("nothing to join with", a.predictions_without_outcome, a.outcomes_without_prediction),
    ]
    joined = Section(
        "What was joined",
        [
            f"{a.matched:,} customers have a prediction and an outcome. Every other row is "
            f"listed with its reason in {UNMATCHED}.",
            Table(["", "predictions", "outcomes"], [[w, f"{p:,}", f"{o:,}"] for w, p, o in where]),
        ],
    )
    note = f"At the model's threshold of {evaluation.threshold:g} (model version "
    note += f"{evaluation.model_version}). Each figure now, then the model card's on the "
    note += "holdout at training."
    if a.matched_without_geography:
        note += (
            f" {a.matched_without_geography:,} joined customers have no Geography (pass "
            "--customers, the file that was scored) and count only overall."
        )
    with_geography = a.matched - a.matched_without_geography
    hidden = hidden_note(evaluation.now, {GEOGRAPHY: with_geography} if with_geography else {})
    note += f" {hidden}" if hidden else ""
    performance = Section(
        "Performance on the outcomes, beside the holdout",
        [note, _side_by_side(evaluation.now, holdout)],
    )
    holdout_error = calibration_error(evaluation.holdout_calibration)
    calibrations = []
    for name, rows in evaluation.calibration.items():
        text = f"Expected calibration error {figure(calibration_error(rows))}"
        if name == ALL_CUSTOMERS and holdout_error is not None:
            text += f"; on the holdout {figure(holdout_error)}"
        calibrations.append(Section(f"Calibration: {name}", [text + ".", calibration_table(rows)]))
    return Document(
        f"Model evaluation: {evaluation.model} against outcomes",
        [joined, performance, *calibrations],
    )


def _side_by_side(
    now: list[SegmentMetrics], holdout: dict[tuple[str, str], SegmentMetrics]
) -> Table:
    figures = ("roc_auc", "precision", "recall", "brier")
    rows = []
    for segment in now:
        # A pool of other values now and at training need not hold the same values.
        then = None if segment.pooled else holdout.get((segment.group, segment.value))
        row = [segment.label, f"{segment.customers:,}", f"{segment.churn_rate:.1%}"]
        for name in figures:
            row += [figure(getattr(segment, name)), figure(getattr(then, name, None))]
        rows.append(row)
    headers = ["segment", "customers", "churn rate"]
    for name in ("ROC-AUC", "precision", "recall", "Brier"):
        headers += [f"{name} now", "holdout"]
    return Table(headers, rows)
