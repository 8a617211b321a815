"""The baseline: the old Flask app, reimplemented as it served the model.

One pandas DataFrame per request and the scikit-learn pipeline's `predict`, under
gunicorn with 4 sync workers (`benchmarks.run` starts it). The only departure from the
old app is how the model is loaded: through `churn.model.artifact.load_verified`, which
checks the joblib file's SHA-256 against its metadata before unpickling it.

    gunicorn --workers 4 --bind 127.0.0.1:PORT benchmarks.baseline_app:app

`CHURN_BASELINE_MODEL` names another joblib file (default: the bundled model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, Response, jsonify, request

from churn.model.artifact import MODELS_DIR, ModelMetadata, load_verified, metadata_path_for
from churn.record.schema import FEATURE_NAMES

MODEL_PATH = Path(
    os.environ.get("CHURN_BASELINE_MODEL", str(MODELS_DIR / "churn_prediction_model_v1_0.joblib"))
)


def load_model(path: Path) -> Any:
    """The pipeline, unpickled only after its digest matched the recorded one."""
    metadata = ModelMetadata.read(metadata_path_for(path))
    return load_verified(path, metadata.artifact_sha256)


model = load_model(MODEL_PATH)
app = Flask(__name__)


@app.post("/v1/customer")
def customer() -> Response:
    df = pd.DataFrame([request.get_json()])
    pred = model.predict(df[list(FEATURE_NAMES)])[0]
    return jsonify({"Prediction": "churn" if pred else "not churn"})


@app.post("/v1/customerbatch")
def customerbatch() -> Response:
    df = pd.read_csv(request.files["file"])
    preds = model.predict(df[list(FEATURE_NAMES)])
    labels = ["Churn" if p else "Not Churn" for p in preds]
    return jsonify(dict(zip(df.CustomerId.astype(str), labels, strict=True)))
