"""The one definition of a customer record.

`CustomerFeatures` is the source of truth: the nine model features with their types,
bounds and categories. Everything else derives from it: `FEATURE_SPECS` (used by the
CSV reader, the synthetic generator, training and the UI form), `FEATURE_NAMES` (the
model's column order), and the JSON schema the service publishes at `/v2/model`.

The bounds are those a bank's core system can produce, a little wider than the public
data set (CreditScore 350-850, Age 18-92, Tenure 0-10), so that a legitimate customer
outside the training range is still scored rather than refused. CreditScore goes to
900 because the old service's documented example used 900.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

GEOGRAPHIES = ("France", "Germany", "Spain")
CUSTOMER_ID = "CustomerId"
TARGET = "Exited"

GeographyName = Literal["France", "Germany", "Spain"]


def _whole_float_to_int(value: Any) -> Any:
    # JSON has one number type. Clients that hold every column as floats (pandas) send
    # 600.0, which the old service scored, the CSV reader takes and JSON Schema counts
    # as an integer. A fraction, text or true/false is still refused.
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# Placed after the bounds in each `Annotated`: it still runs first, and pydantic then
# publishes the bounds as JSON Schema's `minimum`/`maximum`. Placed before them, it
# publishes `ge`/`le`, which no JSON Schema tool knows, and generated clients and
# fuzzers take CreditScore 0 for valid.
WholeNumber = BeforeValidator(_whole_float_to_int)
Flag = Annotated[int, Field(ge=0, le=1, strict=True), WholeNumber]


def _id_to_text(value: Any) -> Any:
    # Bank ids arrive as JSON numbers from some clients and as text from others; the
    # old service keyed its answers by the id's text, so text is the canonical form.
    # A whole number sent as a float is the integer, as for the features.
    value = _whole_float_to_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


_ID_CHARS = 64
_ID_TEXT = StringConstraints(min_length=1, max_length=_ID_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$")
# An integer id becomes its text, so it may have as many characters, its sign included.
_ID_NUMBER = Annotated[int, Field(ge=1 - 10 ** (_ID_CHARS - 1), le=10**_ID_CHARS - 1)]
# The validator comes after the constraints, as WholeNumber does, so that pydantic
# publishes them all (before them, it left the pattern out), and it publishes what
# clients may send: text, or an integer.
CustomerIdText = Annotated[
    str,
    _ID_TEXT,
    BeforeValidator(_id_to_text, json_schema_input_type=Annotated[str, _ID_TEXT] | _ID_NUMBER),
]


class CustomerFeatures(BaseModel):
    """The nine features the churn model reads, with the bounds the service accepts."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    CreditScore: Annotated[
        int,
        Field(
            ge=300, le=900, strict=True, title="Credit score", description="Credit score (300-900)."
        ),
        WholeNumber,
    ]
    Geography: GeographyName = Field(
        title="Country", description="Country of the customer's branch."
    )
    Age: Annotated[
        int,
        Field(ge=18, le=100, strict=True, title="Age", description="Age in years."),
        WholeNumber,
    ]
    Tenure: Annotated[
        int,
        Field(
            ge=0,
            le=60,
            strict=True,
            title="Tenure (years)",
            description="Years as a customer of the bank.",
        ),
        WholeNumber,
    ]
    Balance: Annotated[
        float,
        Field(
            ge=0,
            le=100_000_000,
            strict=True,
            allow_inf_nan=False,
            title="Balance (EUR)",
            description="Account balance in EUR.",
        ),
    ]
    NumOfProducts: Annotated[
        int,
        Field(
            ge=1,
            le=4,
            strict=True,
            title="Products held",
            description="Number of bank products held.",
        ),
        WholeNumber,
    ]
    HasCrCard: Annotated[
        Flag, Field(title="Credit card", description="1 if the customer has a credit card.")
    ]
    IsActiveMember: Annotated[
        Flag, Field(title="Active member", description="1 if the customer is an active member.")
    ]
    EstimatedSalary: Annotated[
        float,
        Field(
            ge=0,
            le=100_000_000,
            strict=True,
            allow_inf_nan=False,
            title="Estimated salary (EUR)",
            description="Estimated salary in EUR.",
        ),
    ]


class Customer(CustomerFeatures):
    """A customer record as clients send it: the features plus an optional id."""

    CustomerId: CustomerIdText | None = Field(
        default=None, description="The bank's customer id, echoed back in results."
    )


Kind = Literal["integer", "number", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature as readers, the generator and the UI need it, derived from the model."""

    name: str
    kind: Kind
    description: str
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()

    def allowed(self) -> str:
        """What this feature accepts, in words for error messages."""
        if self.kind == "category":
            return "one of " + ", ".join(self.categories)
        noun = "an integer" if self.kind == "integer" else "a number"
        return f"{noun} from {_number(self.minimum)} to {_number(self.maximum)}"

    def as_json(self) -> dict[str, Any]:
        """The spec as published to clients; absent bounds are left out, not null."""
        described: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "description": self.description,
        }
        if self.kind == "category":
            described["categories"] = list(self.categories)
        else:
            described["minimum"] = self.minimum
            described["maximum"] = self.maximum
        return described


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}" if value != int(value) else str(int(value))


def _spec_for(name: str, field: Any) -> FeatureSpec:
    annotation = field.annotation
    description = field.description or ""
    if typing.get_origin(annotation) is Literal:
        return FeatureSpec(name, "category", description, categories=typing.get_args(annotation))
    minimum = maximum = None
    for constraint in field.metadata:
        if isinstance(constraint, Ge):
            minimum = float(constraint.ge)  # type: ignore[arg-type]
        elif isinstance(constraint, Le):
            maximum = float(constraint.le)  # type: ignore[arg-type]
    kind: Kind = "integer" if annotation is int else "number"
    return FeatureSpec(name, kind, description, minimum=minimum, maximum=maximum)


FEATURE_SPECS: tuple[FeatureSpec, ...] = tuple(
    _spec_for(name, field) for name, field in CustomerFeatures.model_fields.items()
)
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURE_SPECS)
SPECS_BY_NAME: dict[str, FeatureSpec] = {spec.name: spec for spec in FEATURE_SPECS}
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(
    spec.name for spec in FEATURE_SPECS if spec.kind == "category"
)
NUMERIC_FEATURES: tuple[str, ...] = tuple(
    spec.name for spec in FEATURE_SPECS if spec.kind != "category"
)
