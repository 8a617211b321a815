from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from churn.model.synth import COLUMNS
from tests.conftest import free_port, run_churn


def test_synth_writes_the_public_layout(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.csv"
    result = run_churn("data", "synth", "--rows", "300", "--seed", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 300


def test_train_twice_gives_the_same_metrics(tmp_path: Path, model_store: Path) -> None:
    data = tmp_path / "d.csv"
    assert run_churn("data", "synth", "--rows", "1500", "--out", str(data)).returncode == 0
    outputs = []
    stored = []
    for name in ("a", "b"):
        result = run_churn("train", "--data", str(data), "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert "fold 1/5" in result.stderr
        outputs.append(result.stdout.splitlines()[1:-1])
        stored.append(result.stdout.splitlines()[-1])
        meta = json.loads(
            (tmp_path / name / "churn_prediction_model_v1_0.metadata.json").read_text()
        )
        assert meta["data_rows"] == 1500
        # What churn import-model --sha256 needs.
        assert f"(sha256 {meta['artifact_sha256']})" in result.stdout
    assert outputs[0] == outputs[1]
    # The same model, byte for byte: stored once, the second run finds it.
    tag = f"churn_model:1.0-train-{meta['artifact_sha256'][:8]}"
    assert stored == [f"stored {tag}", f"already in the store: {tag}"]


def test_train_reports_bad_rows_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("CreditScore,Age\n600,40\n")
    result = run_churn("train", "--data", str(data), "--out", str(tmp_path))
    assert result.returncode == 1
    assert "missing required columns" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_finds_the_service_by_the_clients_setting(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("CustomerId,CreditScore\n1,600\n", encoding="utf-8")
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_churn(
        "predict", str(source), "--timeout", "2", env={"CHURN_API_URL": nowhere + "/"}
    )
    assert result.returncode == 1
    # Without its trailing slash: read through ClientSettings, not by click on its own.
    assert f"The churn service at {nowhere} cannot be reached" in result.stderr
    shown = run_churn("predict", "--help").stdout
    assert " ".join(shown.split()).count("CHURN_API_URL, else http://127.0.0.1:3000") == 1


def test_drift_and_evaluate_take_the_model_from_the_services_setting(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("CustomerId,CreditScore\n1,600\n", encoding="utf-8")
    env = {"CHURN_MODEL_TAG": " no_such_model:1 ", "BENTOML_HOME": str(tmp_path / "store")}
    drifted = run_churn("drift", str(source), "--out", str(tmp_path / "r.html"), env=env)
    evaluated = run_churn("evaluate", str(source), str(source), "--out", str(tmp_path), env=env)
    for result in (drifted, evaluated):
        assert result.returncode == 2
        assert "Model no_such_model:1 is not in the BentoML model store" in result.stderr
