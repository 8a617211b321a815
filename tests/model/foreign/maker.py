"""Makes a churn pipeline the way a notebook elsewhere would, and answers with it.

Runs in an environment of other pins (built by uv for the tests), never in the
project's: it imports nothing from churn, only the libraries of its own environment.

    python maker.py make KIND OUT.joblib [COMPRESS]   fit a KIND pipeline and dump it
    python maker.py predict MODEL.joblib IN.json OUT.json   its predict_proba and predict

IN.json holds customers as {feature: [values...]}; OUT.json gets
{"probabilities": [...], "labels": [...]}, as the old app's `model.predict` gave them.
"""

from __future__ import annotations

import json
import sys

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

NUMBERS = [
    "CreditScore", "Age", "Tenure", "Balance", "NumOfProducts", "HasCrCard",
    "IsActiveMember", "EstimatedSalary",
]  # fmt: skip
# The public data set's order, as the notebook read it.
CSV_ORDER = ["CreditScore", "Geography", *NUMBERS[1:]]


def customers(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    balance = np.where(rng.random(rows) < 0.35, 0.0, rng.normal(1.2e5, 3e4, rows)).round(2)
    frame = pd.DataFrame(
        {
            "CreditScore": rng.integers(350, 851, rows),
            "Geography": rng.choice(["France", "Germany", "Spain"], rows, p=[0.5, 0.25, 0.25]),
            "Age": rng.integers(18, 93, rows),
            "Tenure": rng.integers(0, 11, rows),
            "Balance": np.abs(balance),
            "NumOfProducts": rng.choice([1, 2, 3, 4], rows, p=[0.5, 0.45, 0.04, 0.01]),
            "HasCrCard": rng.integers(0, 2, rows),
            "IsActiveMember": rng.integers(0, 2, rows),
            "EstimatedSalary": rng.uniform(11.58, 199992.48, rows).round(2),
        }
    )[CSV_ORDER]
    margin = (
        -2.0 + 0.06 * (frame["Age"] - 40) + 0.8 * (frame["Geography"] == "Germany")
        - 0.9 * frame["IsActiveMember"] + 1.5 * (frame["NumOfProducts"] >= 3)
        + 0.000004 * frame["Balance"]
    )  # fmt: skip
    labels = (rng.random(rows) < 1 / (1 + np.exp(-margin))).astype(int)
    return frame, labels


def classifier() -> XGBClassifier:
    return XGBClassifier(
        n_estimators=60, max_depth=4, learning_rate=0.1, subsample=0.9, random_state=3,
        eval_metric="logloss", n_jobs=1,
    )  # fmt: skip


def pipeline(kind: str) -> tuple[Pipeline, list[str]]:
    if kind == "notebook":  # the department's notebook, as issue 26 describes it
        columns = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["Geography"]), remainder="passthrough"
        )
        return make_pipeline(columns, classifier()), CSV_ORDER
    if kind == "reordered":  # named steps, the numbers first in another order, a dropped category
        order = ["Balance", "Age", "EstimatedSalary", "IsActiveMember", "Tenure",
                 "NumOfProducts", "CreditScore", "HasCrCard"]  # fmt: skip
        columns = ColumnTransformer(
            [
                ("numbers", "passthrough", order),
                ("country", OneHotEncoder(drop="first", handle_unknown="error"), ["Geography"]),
            ],
            remainder="drop",
        )
        frame_order = ["Age", "Geography", *[n for n in NUMBERS if n != "Age"]]
        return Pipeline([("prepare", columns), ("churn_model", classifier())]), frame_order
    if kind == "scaled":  # a step the service cannot express: the numbers scaled
        columns = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["Geography"]), remainder=StandardScaler()
        )
        return make_pipeline(columns, classifier()), CSV_ORDER
    raise SystemExit(f"unknown kind {kind}")


def main(argv: list[str]) -> None:
    if argv[0] == "make":
        kind, out = argv[1], argv[2]
        model, order = pipeline(kind)
        frame, labels = customers(4000, seed=11)
        model.fit(frame[order], labels)
        joblib.dump(model, out, compress=int(argv[3]) if len(argv) > 3 else 0)
    elif argv[0] == "predict":
        model = joblib.load(argv[1])
        with open(argv[2], encoding="utf-8") as handle:
            frame = pd.DataFrame(json.load(handle))
        answer = {
            "probabilities": model.predict_proba(frame)[:, 1].astype(float).tolist(),
            "labels": model.predict(frame).astype(int).tolist(),
        }
        with open(argv[3], "w", encoding="utf-8") as handle:
            json.dump(answer, handle)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
