"""`churn drift` and `churn evaluate`, run as a user runs them, on small files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.model.store import load_model, save_once
from churn.model.training import TrainingResult
from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.drift_report import file_drift, write_evidently_report
from churn.monitoring.profile import reference_of
from tests.conftest import LiveService, run_churn
from tests.monitoring.conftest import like_training, shifted, write


def drift(current: Path, out: Path, store: Path) -> tuple[int, dict[str, Any], str]:
    result = run_churn("drift", str(current), "--out", str(out), env={"BENTOML_HOME": str(store)})
    summary = json.loads(result.stdout) if result.returncode in (0, 1, 3) else {}
    return result.returncode, summary, result.stderr


def test_drift_of_customers_like_the_training_data(bundled_store: Path, tmp_path: Path) -> None:
    customers = write(like_training(1500, seed=5), tmp_path / "today.csv")
    status, summary, _ = drift(customers, tmp_path / "report.html", bundled_store)
    assert status == 0
    assert summary["customers"] == summary["rows"] == 1500
    assert summary["drifted"] == []
    assert {f["status"] for f in summary["features"].values()} == {"ok"}
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Drifted Columns" in report  # Evidently's data drift preset
    assert "EstimatedSalary" in report


def test_drift_of_older_customers_all_in_germany_exits_1(
    bundled_store: Path, tmp_path: Path
) -> None:
    customers = write(shifted(like_training(1500, seed=5)), tmp_path / "today.parquet")
    status, summary, _ = drift(customers, tmp_path / "report.html", bundled_store)
    assert status == 1
    assert {"Age", "Geography"} <= set(summary["drifted"])
    assert summary["features"]["Age"]["status"] == "drift"
    assert summary["features"]["Geography"]["status"] == "drift"
    assert summary["features"]["CreditScore"]["status"] == "ok"
    assert (tmp_path / "report.html").stat().st_size > 100_000


def test_drift_of_too_few_customers_has_an_exit_status_of_its_own(
    bundled_store: Path, tmp_path: Path
) -> None:
    # Issue 27: it exited 0 when every status was "insufficient", so that a scheduler could
    # not tell "too few customers" from "fine".
    customers = write(like_training(MIN_CUSTOMERS - 1, seed=5), tmp_path / "few.csv")
    status, summary, _ = drift(customers, tmp_path / "report.html", bundled_store)
    assert status == 3
    assert summary["customers"] == MIN_CUSTOMERS - 1
    statuses = {f["status"] for f in [*summary["features"].values(), summary["score"]]}
    assert statuses == {"insufficient"}
    assert {f["psi"] for f in summary["features"].values()} == {None}


def test_drift_counts_rejected_rows_and_refuses_a_file_it_cannot_read(
    bundled_store: Path, tmp_path: Path
) -> None:
    customers = like_training(300, seed=6).astype({"Age": object})
    customers.loc[[3, 7], "Age"] = "old"
    status, summary, errors = drift(
        write(customers, tmp_path / "some-bad.csv"), tmp_path / "r.html", bundled_store
    )
    assert status == 0
    assert (summary["rows"], summary["rejected"], summary["customers"]) == (300, 2, 298)
    assert "row 4 Age: is not a number" in errors
    missing = write(like_training(50, seed=6).drop(columns="Age"), tmp_path / "no-age.csv")
    status, _, errors = drift(missing, tmp_path / "r.html", bundled_store)
    assert status == 2
    assert "Age" in errors
    assert "Traceback" not in errors


def test_evidently_reports_the_same_psi_as_the_service_statistic(
    trained: TrainingResult, model_store: Path, tmp_path: Path
) -> None:
    save_once(trained.tree, trained.metadata)
    loaded = load_model()
    current = write(shifted(like_training(800, seed=9)), tmp_path / "c.csv")
    result, counts, _ = file_drift(current, loaded)
    theirs = write_evidently_report(reference_of(loaded.metadata), counts, tmp_path / "r.html")
    ours = {name: f.psi for name, f in result.drift.features.items()} | {
        "score": result.drift.score.psi
    }
    assert theirs.keys() == ours.keys()
    for name, value in ours.items():
        assert theirs[name] == pytest.approx(value, abs=1e-6), name


# --- churn evaluate -------------------------------------------------------------------


def scored_by_the_service(live: LiveService, customers: Path, out: Path) -> Path:
    with customers.open("rb") as upload:
        answer = httpx.post(
            f"{live.url}/v2/predict-file", files={"file": ("c.csv", upload, "text/csv")}, timeout=60
        )
    assert answer.status_code == 200
    out.write_bytes(answer.content)
    return out


def test_evaluate_joins_every_row_or_says_why_not(
    live_service: LiveService, tmp_path: Path
) -> None:
    customers = like_training(1200, seed=12)
    customers["CustomerId"] = customers["CustomerId"].astype(str)
    uploaded = customers.astype({"Age": object})
    uploaded.loc[[10, 11], "Age"] = "?"  # rejected when scored
    predictions = scored_by_the_service(
        live_service, write(uploaded, tmp_path / "upload.csv"), tmp_path / "scored.csv"
    )
    outcomes = customers[["CustomerId", "Exited"]].iloc[5:].astype(str)  # 5 without outcome
    extra = pd.DataFrame({"CustomerId": ["X1", "X2", "X3", outcomes.iloc[0, 0]],
                          "Exited": ["1", "0", "1", "1"]})  # fmt: skip
    outcomes = pd.concat([outcomes, extra], ignore_index=True)
    outcomes.loc[20, "Exited"] = "yes"
    write(outcomes, tmp_path / "outcomes.csv")

    result = run_churn(
        "evaluate", str(predictions), str(tmp_path / "outcomes.csv"),
        "--customers", str(tmp_path / "upload.csv"), "--out", str(tmp_path / "eval"),
        env={"BENTOML_HOME": str(live_service.home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["predictions_rows"] == 1200
    assert summary["predictions_not_scored"] == 2
    assert summary["outcomes_invalid"] == 1
    assert summary["outcomes_duplicate_id"] == 2  # the id given twice: both rows
    assert summary["outcomes_without_prediction"] == 3 + 2  # unknown ids; the rejected rows
    assert summary["predictions_without_outcome"] == 5 + 1 + 1  # dropped, invalid, duplicate
    assert summary["predictions_rows"] == sum(
        summary[k] for k in ("matched", "predictions_without_id", "predictions_not_scored",
                             "predictions_duplicate_id", "predictions_without_outcome")
    )  # fmt: skip
    assert summary["outcomes_rows"] == len(outcomes) == sum(
        summary[k] for k in ("matched", "outcomes_without_id", "outcomes_invalid",
                             "outcomes_duplicate_id", "outcomes_without_prediction")
    )  # fmt: skip
    unmatched = list(csv.DictReader(io.StringIO((tmp_path / "eval/unmatched.csv").read_text())))
    assert len(unmatched) == (summary["predictions_rows"] + summary["outcomes_rows"]
                              - 2 * summary["matched"])  # fmt: skip
    assert {row["reason"] for row in unmatched} >= {
        "no outcome for this id",
        "rejected when scored",
    }

    scored = pd.read_csv(predictions, dtype={"CustomerId": str})
    joined = scored.merge(
        outcomes[
            ~outcomes["CustomerId"].duplicated(keep=False) & outcomes["Exited"].isin(["0", "1"])
        ],
        on="CustomerId",
    ).dropna(subset=["churn_probability"])
    assert summary["matched"] == len(joined)
    expected_auc = roc_auc_score(joined["Exited"].astype(int), joined["churn_probability"])
    assert summary["overall"]["roc_auc"] == pytest.approx(expected_auc, abs=1e-6)
    evaluation = json.loads((tmp_path / "eval/evaluation.json").read_text())
    countries = [s["value"] for s in evaluation["now"] if s["group"] == "Geography"]
    assert countries == ["France", "Germany", "Spain"]
    assert [s["value"] for s in evaluation["holdout"] if s["group"] == "Geography"] == countries
    report = (tmp_path / "eval/evaluation.md").read_text()
    assert "| Geography = Germany |" in report
    assert "ROC-AUC now | holdout" in report


def test_evaluate_spark_parquet_with_geography_in_the_outcomes(
    live_service: LiveService, tmp_path: Path
) -> None:
    customers = like_training(400, seed=13)
    rng = np.random.default_rng(1)
    predictions = pd.DataFrame(
        {"CustomerId": customers["CustomerId"].astype(str),
         "churn_probability": rng.random(len(customers)), "model_version": "1.0"}
    )  # fmt: skip
    write(predictions, tmp_path / "scored.parquet")
    write(customers, tmp_path / "outcomes.csv")  # the bank's records: Geography and Exited
    result = run_churn(
        "evaluate", str(tmp_path / "scored.parquet"), str(tmp_path / "outcomes.csv"),
        "--out", str(tmp_path / "eval"), env={"BENTOML_HOME": str(live_service.home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["matched"] == 400
    assert summary["matched_without_geography"] == 0
    assert summary["overall"]["roc_auc"] == pytest.approx(0.5, abs=0.1)  # random scores


def test_evaluate_with_nothing_to_join_says_so(live_service: LiveService, tmp_path: Path) -> None:
    write(pd.DataFrame({"CustomerId": ["a"], "churn_probability": [0.4]}), tmp_path / "p.csv")
    write(pd.DataFrame({"CustomerId": ["b"], "Exited": [1]}), tmp_path / "o.csv")
    result = run_churn(
        "evaluate", str(tmp_path / "p.csv"), str(tmp_path / "o.csv"), "--out", str(tmp_path / "e"),
        env={"BENTOML_HOME": str(live_service.home)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "No customer has both" in result.stderr
    assert len((tmp_path / "e/unmatched.csv").read_text().splitlines()) == 3


def test_evaluate_shows_no_segment_under_the_minimum(
    live_service: LiveService, tmp_path: Path
) -> None:
    customers = like_training(400, seed=13)
    customers["Geography"] = np.where(np.arange(400) < 250, "France", "Spain")
    customers.loc[0, "Geography"] = "Schmidt 15588458\n# Injected"
    predictions = pd.DataFrame(
        {"CustomerId": customers["CustomerId"].astype(str), "churn_probability": 0.3}
    )
    write(predictions, tmp_path / "scored.csv")
    write(customers, tmp_path / "outcomes.csv")
    result = run_churn(
        "evaluate", str(tmp_path / "scored.csv"), str(tmp_path / "outcomes.csv"),
        "--out", str(tmp_path / "eval"), env={"BENTOML_HOME": str(live_service.home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "eval/evaluation.json").read_text())
    shown = [(s["value"], s["customers"]) for s in evaluation["now"] if s["group"] == "Geography"]
    # Schmidt alone, and Spain (the total less France less Schmidt), would be one customer.
    assert shown == [("France", 249), ("other", 151)]
    assert set(evaluation["calibration"]) == {"all customers", "France"}
    for name in ("evaluation.md", "evaluation.html"):
        report = (tmp_path / "eval" / name).read_text()
        assert "Schmidt" not in report
        assert "Spain" not in report
        assert "Geography: 151 customers in 2 values" in report


def test_an_empty_file_is_named(live_service: LiveService, tmp_path: Path) -> None:
    """`churn evaluate`, `churn drift` and `churn predict` read several files, or one of
    many a scheduler runs: "The file is empty" must say which."""
    empty = tmp_path / "empty-outcomes.csv"
    empty.write_bytes(b"")
    scored = write(
        pd.DataFrame({"CustomerId": ["a"], "churn_probability": [0.4]}), tmp_path / "p.csv"
    )
    known = write(pd.DataFrame({"CustomerId": ["a"], "Exited": [1]}), tmp_path / "o.csv")
    env = {"BENTOML_HOME": str(live_service.home)}
    out = str(tmp_path / "e")
    for command in (
        ("evaluate", str(scored), str(empty), "--out", out),
        ("evaluate", str(empty), str(known), "--out", out),
        ("evaluate", str(scored), str(known), "--customers", str(empty), "--out", out),
        ("drift", str(empty), "--out", str(tmp_path / "d.html")),
        ("predict", str(empty), "--url", live_service.url),
    ):
        result = run_churn(*command, env=env)
        assert result.returncode != 0, command
        assert f"{empty}: The file is empty" in result.stderr, (command, result.stderr)
