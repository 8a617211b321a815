"""The page's pure parts: the form and template from a schema, and reading results back."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd

from churn.clients.ui.form import (
    column_guide,
    customer_payload,
    form_fields,
    published_spec,
    template_csv,
)
from churn.clients.ui.results import churn_rate_by, load_results, read_columns
from churn.record.answers import FileSummary
from churn.record.schema import FEATURE_SPECS

# The schema exactly as the service publishes it at GET /v2/model.
SCHEMA: list[dict[str, Any]] = [spec.as_json() for spec in FEATURE_SPECS]


def test_the_published_schema_reads_back_as_the_specs_it_came_from() -> None:
    assert tuple(published_spec(described) for described in SCHEMA) == FEATURE_SPECS


def test_each_feature_gets_the_input_its_type_and_bounds_call_for() -> None:
    fields = {f.name: f for f in form_fields(SCHEMA)}
    assert list(fields) == [spec["name"] for spec in SCHEMA]
    assert fields["Geography"].widget == "choice"
    assert fields["Geography"].options == ("France", "Germany", "Spain")
    assert fields["HasCrCard"].options == (0, 1)
    assert fields["HasCrCard"].label_for(1) == "1 (yes)"
    assert fields["NumOfProducts"].options == (1, 2, 3, 4)
    assert fields["NumOfProducts"].label_for(3) == "3"
    assert (fields["Age"].widget, fields["Age"].minimum, fields["Age"].maximum) == (
        "integer",
        18,
        100,
    )
    assert fields["Balance"].widget == "number"
    assert fields["Balance"].placeholder == "0 to 100,000,000"
    assert fields["CreditScore"].help == (
        "Credit score (300-900). Allowed: an integer from 300 to 900."
    )


def test_a_new_feature_in_the_schema_appears_without_a_code_change() -> None:
    schema = [
        *SCHEMA,
        {"name": "Segment", "type": "category", "description": "", "categories": ["A", "B"]},
        {"name": "Score2", "type": "number", "description": "", "minimum": 0.0, "maximum": 1.0},
    ]
    names = [f.name for f in form_fields(schema)]
    assert names[-2:] == ["Segment", "Score2"]
    assert template_csv(schema).decode().strip().split(",")[-2:] == ["Segment", "Score2"]


def test_the_payload_is_typed_for_the_service_and_leaves_out_empty_fields() -> None:
    fields = form_fields(SCHEMA)
    values = {"CreditScore": 650.0, "Geography": "Spain", "Balance": 10, "HasCrCard": 1}
    payload = customer_payload(fields, values, "  C-7 ")
    assert payload == {
        "CustomerId": "C-7",
        "CreditScore": 650,
        "Geography": "Spain",
        "Balance": 10.0,
        "HasCrCard": 1,
    }
    assert isinstance(payload["CreditScore"], int)
    assert isinstance(payload["Balance"], float)
    assert "CustomerId" not in customer_payload(fields, {}, "  ")


def test_the_template_is_a_header_the_service_reads() -> None:
    header = next(csv.reader(io.StringIO(template_csv(SCHEMA).decode())))
    assert header == ["CustomerId", *(spec["name"] for spec in SCHEMA)]
    guide = {row["column"]: row["accepts"] for row in column_guide(SCHEMA)}
    assert guide["Geography"] == "one of France, Germany, Spain"
    assert guide["Age"] == "an integer from 18 to 100"
    assert guide["Balance"] == "a number from 0 to 100000000"


def test_columns_are_read_by_row_number_even_from_a_ragged_file(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "\ufeffCustomerId,Geography,Age\n1,France,30\n\n2,Spain\n3\n4,Germany,50,extra\n",
        encoding="utf-8",
    )
    found = read_columns(path, ["Geography", "CustomerId", "Missing"])
    assert found == {
        "Geography": {1: "France", 2: "Spain", 4: "Germany"},
        "CustomerId": {1: "1", 2: "2", 3: "3", 4: "4"},
    }


def test_results_are_joined_to_the_upload_and_ranked(tmp_path: Path) -> None:
    upload = tmp_path / "in.csv"
    upload.write_text(
        "CustomerId,Geography\nA,France\nB,Germany\nC,Mars\nD,Germany\n", encoding="utf-8"
    )
    results = tmp_path / "out.csv"
    results.write_text(
        "row,CustomerId,status,churn_probability,prediction,risk_band,errors\n"
        "1,A,scored,0.1,not churn,low,\n"
        "2,B,scored,0.7,churn,high,\n"
        "4,D,scored,0.4,churn,medium,\n"
        "3,,rejected,,,,Geography: is not an allowed category\n",
        encoding="utf-8",
    )
    summary = FileSummary(
        rows_in=4,
        rows_scored=3,
        rows_rejected=1,
        predicted_churn=2,
        duplicate_ids=0,
        model_version="1.0",
    )
    result = load_results(results, upload, ["Geography"], "in.csv", summary)
    assert result.csv_bytes == results.read_bytes()
    assert result.by_risk()["CustomerId"].tolist() == ["B", "D", "A"]
    assert result.rejected["CustomerId"].tolist() == ["C"]
    assert result.rejected["Geography"].tolist() == ["Mars"]
    assert result.churn_share == 2 / 3
    rates = churn_rate_by(result.scored, "Geography")
    assert rates.to_dict("records") == [
        {"Geography": "France", "customers": 1, "churn_rate": 0.0},
        {"Geography": "Germany", "customers": 2, "churn_rate": 1.0},
    ]
    assert churn_rate_by(result.scored.iloc[0:0], "Geography").empty
    assert isinstance(result.results, pd.DataFrame)


def test_rows_are_numbered_as_the_service_numbers_them(tmp_path: Path) -> None:
    """Blank lines, whitespace-only lines and a blank quoted cell are no rows, for both."""
    from churn.record.csv_reading import read_customer_batches  # the service's reader

    header = ",".join(["CustomerId", *(spec.name for spec in FEATURE_SPECS)])
    good = "{},650,France,40,3,60000,2,1,1,50000"
    bad = "{},650,Atlantis,40,3,60000,2,1,1,50000"
    lines = ["", header, good.format("A"), "   ", good.format("B"), '""', "\t",
             bad.format("C"), "", good.format("D"), bad.format("E")]  # fmt: skip
    upload = tmp_path / "export.csv"
    upload.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")

    rejected_by_service = {
        row: problems
        for batch in read_customer_batches(upload, require_id=True)
        for row, problems in batch.rejected_rows.items()
    }
    ids_by_row = read_columns(upload, ["CustomerId"])["CustomerId"]

    assert sorted(rejected_by_service) == [3, 5]
    assert ids_by_row == {1: "A", 2: "B", 3: "C", 4: "D", 5: "E"}


def test_the_form_speaks_the_schemas_words_not_column_names() -> None:
    from churn.record.schema import Customer

    published = [spec.as_json() for spec in FEATURE_SPECS]
    labels = {f.name: f.label for f in form_fields(published, Customer.model_json_schema())}

    assert labels["CreditScore"] == "Credit score"
    assert labels["IsActiveMember"] == "Active member"
    assert labels["NumOfProducts"] == "Products held"
    # A service that publishes no titles still gets a form, by column name.
    assert form_fields(published)[0].label == "CreditScore"
