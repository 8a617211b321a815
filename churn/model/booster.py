"""The fitted model as scoring needs it: XGBoost's booster and the columns of its input.

The pipeline's ColumnTransformer only one-hot encodes Geography and passes the numbers
through, so scoring needs two things from it: the booster, and which feature (and
which category of it) each of the booster's input columns is. `TreeModel` holds those.

Its file (`TreeModel.to_bytes`) is XGBoost's own UBJSON model, with the columns in one
of the booster's attributes. It is not a pickle: loading it runs no code, and it needs
neither scikit-learn nor joblib. A Spark executor scores with it, so it never imports
scikit-learn and SciPy's statistics (about 2.5 CPU-seconds per executor), and never
unpickles anything. The file is derived from the verified pipeline; whoever ships it
records its SHA-256, and whoever loads it checks that first, as for the pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xgboost

from churn.record.errors import ModelIntegrityError
from churn.record.schema import FEATURE_NAMES, FEATURE_SPECS

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

_COLUMNS_ATTRIBUTE = "churn_input_columns"
_CATEGORIES = {spec.name: spec.categories for spec in FEATURE_SPECS if spec.kind == "category"}


@dataclass(frozen=True)
class Column:
    """One input column of the booster: a passthrough feature or a one-hot category."""

    feature: str
    category: str | None = None

    @property
    def name(self) -> str:
        return self.feature if self.category is None else f"{self.feature}_{self.category}"


@dataclass(frozen=True)
class TreeModel:
    booster: xgboost.Booster
    columns: tuple[Column, ...]

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> TreeModel:
        transformer = pipeline.named_steps["columns"]
        columns = _columns_of(transformer)
        if list(transformer.get_feature_names_out()) != [column.name for column in columns]:
            raise ModelIntegrityError("The model's input columns do not match the schema.")
        booster = pipeline.named_steps["classifier"].get_booster()
        return cls(booster, _checked(columns))

    def to_bytes(self) -> bytes:
        """XGBoost's UBJSON model, the columns in an attribute: a file to ship, not a pickle."""
        booster = self.booster.copy()
        layout = [[column.feature, column.category] for column in self.columns]
        booster.set_attr(**{_COLUMNS_ATTRIBUTE: json.dumps(layout)})
        return bytes(booster.save_raw("ubj"))

    @classmethod
    def from_bytes(cls, data: bytes) -> TreeModel:
        """The model `to_bytes` wrote; the caller has checked the bytes' digest."""
        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(data))
            layout: Any = json.loads(booster.attr(_COLUMNS_ATTRIBUTE) or "null")
            columns = [Column(str(feature), category) for feature, category in layout]
        except (xgboost.core.XGBoostError, ValueError, TypeError) as error:
            raise ModelIntegrityError(f"Not a churn model's booster file: {error}") from None
        booster.set_attr(**{_COLUMNS_ATTRIBUTE: None})
        return cls(booster, _checked(columns))


def _columns_of(transformer: Any) -> list[Column]:
    columns: list[Column] = []
    for name, step, features in transformer.transformers_:
        if name == "remainder":
            # scikit-learn stores the passthrough remainder as an identity transformer.
            if step != "passthrough" and getattr(step, "func", None) is not None:
                raise ModelIntegrityError("The model transforms numeric features unexpectedly.")
            columns += [Column(str(feature)) for feature in features]
        elif step == "drop":
            continue
        else:
            for feature, categories in zip(features, step.categories_, strict=True):
                columns += [Column(str(feature), str(category)) for category in categories]
    return columns


def _checked(columns: Sequence[Column]) -> tuple[Column, ...]:
    """The columns, if they are the customer schema's features and categories."""
    if sorted({column.feature for column in columns}) != sorted(FEATURE_NAMES):
        raise ModelIntegrityError("The model's features do not match the customer schema.")
    for column in columns:
        allowed = _CATEGORIES.get(column.feature)
        if (column.category is None) != (allowed is None) or (
            allowed is not None and column.category not in allowed
        ):
            raise ModelIntegrityError(
                f"The model's input column {column.name} is not one of the customer schema's."
            )
    return tuple(columns)
