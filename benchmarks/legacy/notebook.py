"""The department's notebook, as a script: how `churn_prediction_model_v1_0.joblib` was made.

Runs in the old environment (`make legacy-env`: scikit-learn 1.6.1, XGBoost 2.1.4,
pandas 2.2.2, numpy 2.0.2, joblib 1.4.2), never in the project's:

    build/legacy-env/bin/python benchmarks/legacy/notebook.py \
        --data ../shared/data/Churn_Modelling.csv \
        --out build/legacy/churn_prediction_model_v1_0.joblib

The pipeline is the notebook's shape, `make_pipeline(make_column_transformer(
(OneHotEncoder(handle_unknown='ignore'), ['Geography']), remainder='passthrough'),
XGBClassifier(...))`, fitted on the public data set's nine features with `Exited` as the
target, then pickled with `joblib.dump`. It prints the file's SHA-256, which is what the
import is given (`churn import-model FILE --sha256 HEX`), and with `--digest` writes it
to a file of its own, outside the model's folder. A missing data set is a skip, with a
message, not an error.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import joblib
import pandas as pd
import sklearn
import xgboost
from sklearn.compose import make_column_transformer
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from xgboost import XGBClassifier

features = [
    "CreditScore", "Geography", "Age", "Tenure", "Balance",
    "NumOfProducts", "HasCrCard", "IsActiveMember", "EstimatedSalary",
]  # fmt: skip
target = "Exited"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Churn_Modelling.csv")
    parser.add_argument("--out", type=Path, required=True, help="the joblib file to write")
    parser.add_argument("--digest", type=Path, help="also write the SHA-256 here")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: the public data set {args.data} is absent; no model made.")
        return 0

    df = pd.read_csv(args.data)
    X = df[features]
    y = df[target]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=42, stratify=y
    )

    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["Geography"]), remainder="passthrough"
        ),
        XGBClassifier(
            n_estimators=200, max_depth=4, learning_rate=0.1, subsample=0.9,
            colsample_bytree=0.9, eval_metric="logloss", random_state=42, n_jobs=1,
        ),
    )  # fmt: skip
    model.fit(X_train, y_train)

    y_pred = model.predict(X_test)
    y_prob = model.predict_proba(X_test)[:, 1]
    print(
        f"scikit-learn {sklearn.__version__}, XGBoost {xgboost.__version__}, "
        f"pandas {pd.__version__}, Python {sys.version.split()[0]}"
    )
    accuracy, auc = accuracy_score(y_test, y_pred), roc_auc_score(y_test, y_prob)
    print(f"test accuracy {accuracy:.4f}, ROC AUC {auc:.4f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: SHA-256 {digest}")
    if args.digest:
        args.digest.write_text(digest + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
