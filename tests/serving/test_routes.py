"""The routes' answers, decided from inputs already read: no HTTP request in, no HTTP
response out (the layers in churn.serving.app, fastpath and service.py do that part)."""

from __future__ import annotations

import ast
import asyncio
import json
import tempfile
from pathlib import Path

import pytest

from churn.model.store import LoadedModel
from churn.model.training import TrainingResult
from churn.record.errors import PayloadTooLarge
from churn.record.schema import CustomerFeatures
from churn.scoring.predictor import ChurnPredictor
from churn.serving import routes
from tests.factories import make_customer

HTTP_LIBRARIES = ("fastapi", "starlette", "bentoml", "python_multipart")
COLUMNS = list(make_customer(CustomerId="1"))


@pytest.fixture(scope="module")
def predictor(trained: TrainingResult) -> ChurnPredictor:
    return ChurnPredictor(LoadedModel(trained.tree, trained.metadata, "churn_model:test"))


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the routes' temporary files go in this test: it sees every one they leave."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def upload(folder: Path, *customers: dict[str, object]) -> Path:
    lines = [",".join(COLUMNS)] + [",".join(str(c[k]) for k in COLUMNS) for c in customers]
    path = folder / "upload.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_routes_module_uses_no_http_library() -> None:
    tree = ast.parse(Path(routes.__file__).read_text(encoding="utf-8"))
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }
    assert not {name for name in imported if name.split(".")[0] in HTTP_LIBRARIES}


def test_predict_file_answers_a_results_file_that_accounts_for_every_row(
    predictor: ChurnPredictor, results_dir: Path, tmp_path: Path
) -> None:
    saved = upload(
        tmp_path,
        make_customer(CustomerId="7"),
        make_customer(CustomerId="8", Geography="Mars"),
        make_customer(CustomerId="9", Age=80),
    )
    results = asyncio.run(routes.predict_file(predictor, saved, "json", max_rows=10))
    assert results.output_format == "json"
    assert results.path.parent == results_dir
    body = json.loads(results.path.read_text(encoding="utf-8"))
    assert [p["CustomerId"] for p in body["predictions"]] == ["7", "9"]
    assert [r["row"] for r in body["rejected"]] == [2]
    assert (results.summary.rows_in, results.summary.rows_scored) == (3, 2)
    assert results.summary.rows_rejected == 1
    assert body["summary"] == results.summary.model_dump(mode="json")
    assert saved.exists()  # the upload is the caller's to delete


def test_predict_file_leaves_no_results_file_when_it_refuses(
    predictor: ChurnPredictor, results_dir: Path, tmp_path: Path
) -> None:
    saved = upload(tmp_path, *(make_customer(CustomerId=str(i)) for i in range(3)))
    with pytest.raises(PayloadTooLarge):
        asyncio.run(routes.predict_file(predictor, saved, "csv", max_rows=2))
    assert list(results_dir.iterdir()) == []


def test_legacy_customer_batch_answers_as_flask_did(
    predictor: ChurnPredictor, tmp_path: Path
) -> None:
    customers = [make_customer(CustomerId=str(i), Age=age) for i, age in [(20, 30), (3, 75)]]
    body = asyncio.run(
        routes.legacy_customer_batch(predictor, upload(tmp_path, *customers), max_rows=10)
    )
    labels = [
        "Churn" if predictor.is_churn(CustomerFeatures.model_validate(c)) else "Not Churn"
        for c in customers
    ]
    # jsonify: the ids as pandas read them (integers, so 3 before 20), no spaces, a newline.
    assert body == f'{{"3":"{labels[1]}","20":"{labels[0]}"}}\n'.encode()
