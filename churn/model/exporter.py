"""Export a fitted churn pipeline, in the environment it was made in, into a form that is
not a pickle.

This file runs as a script in another environment (`churn.model.environments`: the
scikit-learn and XGBoost that made the pickle), never inside the project's package: it
imports nothing from churn, only the standard library and that environment's numpy,
pandas, scikit-learn, XGBoost and joblib, and it must work with their old versions
(scikit-learn 1.1 on, XGBoost 1.0 on).

    python -I exporter.py FOLDER < model.joblib

The pickle's bytes come on standard input: the importer checked their SHA-256 and hands
over exactly those bytes; this script never opens the original file. FOLDER (private to
the importer) holds probe.json: the customer schema's features and categories, and the
customers to answer for: {"features": [...], "categories": {feature: [...]},
"columns": {feature: [values]}}. The script writes there:
- booster.ubj (or booster.json for XGBoost before 1.6): XGBoost's own model;
- export.json: the input layout (which feature, or which category of a feature, each
  of the booster's columns is), the pipeline's steps, its libraries' versions, and
  `predict_proba(...)[:, 1]` and `predict(...)` on the probe customers.

What the layout cannot express exactly is refused (exit status 3, the reason on the
last line of standard error, naming the step): anything but one ColumnTransformer of
one-hot encoders and passthrough columns, then XGBoost's classifier.
"""

from __future__ import annotations

import io
import json
import math
import platform
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

REFUSED = 3


class Refused(Exception):
    """The pipeline holds something the service's input layout cannot express exactly."""


def main(folder: Path) -> int:
    data = sys.stdin.buffer.read()
    # An old scikit-learn's notices about its own future are no news to the importer.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        export(data, folder)
    except Refused as refusal:
        print(f"REFUSED: {refusal}", file=sys.stderr)
        return REFUSED
    return 0


def export(data: bytes, folder: Path) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    probe = json.loads((folder / "probe.json").read_text(encoding="utf-8"))
    model = joblib.load(io.BytesIO(data))
    classifier_name, classifier, transformer_name, transformer = _steps(model)
    inputs = _inputs(model, transformer_name, transformer, probe["features"])
    frame = pd.DataFrame(probe["columns"])[inputs]
    columns, encoders = _layout(transformer_name, transformer, inputs, probe["categories"])
    _check_layout(transformer_name, transformer, frame, columns)
    booster = _booster(classifier_name, classifier)
    raw, form = _raw(booster, folder)
    (folder / f"booster.{form}").write_bytes(raw)
    probabilities = np.asarray(model.predict_proba(frame), dtype=np.float64)[:, 1]
    labels = np.asarray(model.predict(frame))
    answer = {
        "booster_format": form,
        "columns": columns,
        "encoders": encoders,
        "steps": [[name, _class_name(step)] for name, step in model.steps],
        "versions": _versions(),
        "probabilities": [float(p) for p in probabilities],
        "labels": [int(label) for label in labels],
    }
    (folder / "export.json").write_text(json.dumps(answer), encoding="utf-8")


def _class_name(step: Any) -> str:
    return str(step) if isinstance(step, str) or step is None else type(step).__name__


def _steps(model: Any) -> tuple[str, Any, str, Any]:
    """The pipeline's ColumnTransformer and XGBoost classifier, or a refusal naming the step."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        raise Refused(
            f"The file holds a {type(model).__name__}, not a scikit-learn Pipeline of a "
            "ColumnTransformer and an XGBClassifier."
        )
    steps = [(name, step) for name, step in model.steps if step not in (None, "passthrough")]
    if not steps:
        raise Refused("The pipeline has no steps.")
    classifier_name, classifier = steps[-1]
    if not _is_xgboost_classifier(classifier):
        raise Refused(
            f"The pipeline's last step {classifier_name!r} is a "
            f"{type(classifier).__module__}.{type(classifier).__name__}; only XGBoost's "
            "XGBClassifier can be served."
        )
    if len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        others = ", ".join(f"{name!r} ({_class_name(step)})" for name, step in steps[:-1])
        raise Refused(
            f"The pipeline's steps before the classifier are {others or 'none'}; the service "
            "can express exactly one ColumnTransformer that one-hot encodes categories and "
            "passes numbers through."
        )
    return classifier_name, classifier, steps[0][0], steps[0][1]


def _is_xgboost_classifier(step: Any) -> bool:
    try:
        from xgboost import XGBClassifier
    except ImportError:  # pragma: no cover - the environment holds XGBoost
        return False
    return isinstance(step, XGBClassifier)


def _inputs(model: Any, name: str, transformer: Any, schema: list[str]) -> list[str]:
    """The columns the pipeline reads, in its order; all of them the schema's features."""
    names = getattr(transformer, "feature_names_in_", None)
    if names is None:
        raise Refused(
            f"Step {name!r} was fitted on an array without column names, so which column is "
            "which feature cannot be known; fit the pipeline on a pandas DataFrame."
        )
    inputs = [str(column) for column in names]
    outside = [column for column in inputs if column not in schema]
    if outside:
        raise Refused(
            f"Step {name!r} reads {', '.join(outside)}, which the customer schema has not "
            f"(it has {', '.join(schema)})."
        )
    return inputs


def _selected(columns: Any, inputs: list[str]) -> list[str]:
    """A ColumnTransformer's column selection as feature names."""
    import numpy as np

    if isinstance(columns, str | int):
        columns = [columns]
    if isinstance(columns, slice):
        return inputs[columns]
    values = list(columns)
    if values and all(isinstance(v, bool | np.bool_) for v in values):
        return [name for name, keep in zip(inputs, values, strict=True) if keep]
    return [inputs[int(v)] if isinstance(v, int | np.integer) else str(v) for v in values]


def _layout(
    name: str, transformer: Any, inputs: list[str], schema: dict[str, list[str]]
) -> tuple[list[list[str | None]], dict[str, dict[str, Any]]]:
    """Each output column of the ColumnTransformer as [feature, category or None], and for
    each one-hot encoded feature its encoder's categories and what it does with others
    ("error" or "ignore")."""
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    if getattr(transformer, "sparse_output_", False):
        raise Refused(
            f"Step {name!r} gives XGBoost a sparse matrix, in which a zero counts as a "
            "missing value; set sparse_threshold=0 or sparse_output=False and refit."
        )
    weights = getattr(transformer, "transformer_weights", None) or {}
    columns: list[list[str | None]] = []
    encoders: dict[str, dict[str, Any]] = {}
    for part, step, selection in transformer.transformers_:
        features = _selected(selection, inputs)
        where = f"{name!r} ({part!r}: {_class_name(step)} on {', '.join(features)})"
        if step == "drop" or not features:
            continue
        if weights.get(part, 1) != 1:
            raise Refused(f"Step {where} weighs its output by {weights[part]}.")
        if step == "passthrough" or (isinstance(step, FunctionTransformer) and step.func is None):
            columns += [[feature, None] for feature in features]
        elif isinstance(step, OneHotEncoder):
            columns += _one_hot(where, step, features, encoders, schema)
        else:
            raise Refused(
                f"Step {where} transforms the values; the service can only one-hot "
                "encode categories and pass numbers through unchanged."
            )
    return columns, encoders


def _one_hot(
    where: str,
    encoder: Any,
    features: list[str],
    encoders: dict[str, dict[str, Any]],
    schema: dict[str, list[str]],
) -> list[list[str | None]]:
    infrequent = getattr(encoder, "infrequent_categories_", None)
    if infrequent is not None and any(group is not None for group in infrequent):
        raise Refused(f"Step {where} groups infrequent categories into one column.")
    dropped = getattr(encoder, "drop_idx_", None)
    columns: list[list[str | None]] = []
    for index, (feature, categories) in enumerate(zip(features, encoder.categories_, strict=True)):
        if not all(isinstance(category, str) for category in categories):
            raise Refused(
                f"Step {where} one-hot encodes {feature}, whose categories are not all text "
                f"({list(categories)[:5]}...); only categories can be one-hot encoded."
            )
        _check_categories(where, encoder, feature, [str(c) for c in categories], schema)
        drop = None if dropped is None else dropped[index]
        columns += [
            [feature, str(category)]
            for position, category in enumerate(categories)
            if drop is None or position != int(drop)
        ]
        encoders[feature] = {
            "categories": [str(category) for category in categories],
            "unknown": "error" if encoder.handle_unknown == "error" else "ignore",
        }
    return columns


def _check_categories(
    where: str, encoder: Any, feature: str, categories: list[str], schema: dict[str, list[str]]
) -> None:
    """The encoder's categories against the schema's.

    A category the schema has not (a new country) is refused: the service could never
    send such a customer, and the schema is the service's one definition of a customer.
    A schema category the encoder does not know is scored as the pipeline did when it
    ignored unknown categories (all its columns 0), and refused when it raised an error.
    """
    allowed = schema.get(feature)
    if allowed is None:
        raise Refused(f"Step {where} one-hot encodes {feature}, which the schema has as a number.")
    new = [category for category in categories if category not in allowed]
    if new:
        raise Refused(
            f"Step {where} knows {feature} {', '.join(new)}, which the customer schema has "
            f"not (it has {', '.join(allowed)}); if the bank now has it, add it to "
            "churn/record/schema.py first."
        )
    missing = [category for category in allowed if category not in categories]
    if missing and encoder.handle_unknown == "error":
        raise Refused(
            f"Step {where} does not know {feature} {', '.join(missing)} and refused such "
            "customers (handle_unknown='error'), which the service accepts."
        )


def _check_layout(name: str, transformer: Any, frame: Any, columns: list[list[str | None]]) -> None:
    """The layout, applied to the probe customers, must give exactly the transformer's output."""
    import numpy as np

    expected = transformer.transform(frame)
    expected = np.asarray(expected.toarray() if hasattr(expected, "toarray") else expected)
    built = np.empty((len(frame), len(columns)), dtype=np.float64)
    for index, (feature, category) in enumerate(columns):
        values = frame[feature].to_numpy()
        built[:, index] = (values == category) if category is not None else values
    if expected.shape != built.shape or not np.array_equal(expected.astype(np.float64), built):
        raise Refused(
            f"Step {name!r}'s output on the probe customers differs from the layout read "
            "from it; the service could not reproduce it exactly."
        )


def _booster(name: str, classifier: Any) -> Any:
    booster = classifier.get_booster()
    objective = getattr(classifier, "objective", None)
    if objective not in (None, "binary:logistic") or list(classifier.classes_) != [0, 1]:
        raise Refused(
            f"Step {name!r} is not a binary classifier of 0 and 1 with the binary:logistic "
            f"objective (objective {objective}, classes {list(classifier.classes_)})."
        )
    missing = getattr(classifier, "missing", math.nan)
    if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
        raise Refused(
            f"Step {name!r} treats {missing} as a missing value; the service sends every "
            "value as it is."
        )
    if getattr(classifier, "enable_categorical", False):
        raise Refused(f"Step {name!r} uses XGBoost's own categorical features.")
    try:
        best = classifier.best_iteration
    except AttributeError:
        best = None
    if best is not None:  # early stopping: predict uses the trees up to the best round only
        booster = booster[: int(best) + 1]
    booster = booster.copy()
    booster.feature_names = None
    booster.feature_types = None
    return booster


def _raw(booster: Any, folder: Path) -> tuple[bytes, str]:
    """XGBoost's own model: UBJSON from XGBoost 1.6, JSON before it."""
    try:
        return bytes(booster.save_raw("ubj")), "ubj"
    except TypeError:  # XGBoost before 1.6: save_raw takes no format
        path = folder / "booster.json"
        booster.save_model(str(path))
        return path.read_bytes(), "json"


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("scikit-learn", "xgboost", "xgboost-cpu", "numpy", "pandas", "scipy", "joblib"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
