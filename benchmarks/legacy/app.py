"""The old app, the seed's code as written: the department's Flask app before the move.

It runs only in the old environment (`make legacy-env`), and only from this benchmark,
on the model file the benchmark's own notebook script made (`make legacy-model`):

    build/legacy-env/bin/gunicorn --workers 4 --worker-class sync --timeout 600 \
        --chdir build/legacy --pythonpath benchmarks/legacy app:app

What the old app did, and so what this does:
- `joblib.load` of `churn_prediction_model_v1_0.joblib` from its working directory, with
  no checksum: a pickle trusted because it is there. That is the old app's risk, kept
  here on purpose, and acceptable only because the file is one this benchmark made;
- `/v1/customer`: `pd.DataFrame([request.get_json()])`, the pipeline's `predict` (its
  0.5 cut-off), `{"Prediction": "churn" | "not churn"}`;
- `/v1/customerbatch`: `pd.read_csv(request.files['file'])`, `predict` on everything but
  `CustomerId`, and `jsonify` of a `{CustomerId: "Churn" | "Not Churn"}` map with the ids
  as pandas read them (integers for the notebook's ids; Flask writes them as keys, sorted);
- no validation: a bad request is a 500 with Flask's HTML page, as it was.

How it differs from `benchmarks/baseline_app.py` (the issue-3 baseline), and why the
issue-26 baseline is this one: `baseline_app.py` converts the ids to text before
`jsonify` (`astype(str)`: a million Python strings, and a sort of strings rather than
integers), loads the model through `churn.model.artifact.load_verified` (hashing the file
first), and runs on the project's newer libraries (scikit-learn 1.9, XGBoost 3.2,
pandas 3), which cannot unpickle the notebook's model at all. A figure against it says
how the service compares with a reimplementation; a figure against this one says how it
compares with what the department ran. Only the gunicorn timeout (600 s, so the
1,000,000-row upload is measured rather than killed) is the benchmark's.
"""

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load("churn_prediction_model_v1_0.joblib")


@app.route("/v1/customer", methods=["POST"])
def predict_customer():
    data = request.get_json()
    df = pd.DataFrame([data])
    prediction = model.predict(df)[0]
    return jsonify({"Prediction": "churn" if prediction == 1 else "not churn"})


@app.route("/v1/customerbatch", methods=["POST"])
def predict_customer_batch():
    file = request.files["file"]
    df = pd.read_csv(file)
    predictions = model.predict(df.drop(columns=["CustomerId"]))
    # As the old code had it: zip without strict= (Python 3.9 had none).
    result = {
        customer_id: "Churn" if prediction == 1 else "Not Churn"
        for customer_id, prediction in zip(df["CustomerId"], predictions)  # noqa: B905
    }
    return jsonify(result)
