"""The prediction form and the CSV template, derived from the service's published schema.

`feature_schema` (from `GET /v2/model`) lists each feature as
`{name, type: integer|number|category, description, minimum, maximum}` or
`{name, type: category, description, categories}`; nothing here names a feature.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from churn.record.schema import CUSTOMER_ID as ID_COLUMN
from churn.record.schema import FeatureSpec

# An integer feature with at most this many values is a choice, not a number to type.
_MAX_CHOICES = 10

Widget = Literal["choice", "integer", "number"]


@dataclass(frozen=True)
class FormField:
    """One input of the form: a published feature, and how the page draws it."""

    spec: FeatureSpec
    widget: Widget
    options: tuple[Any, ...] = ()

    title: str = ""  # the words a retention officer reads; the column name if none

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.title or self.spec.name

    @property
    def minimum(self) -> float | None:
        return self.spec.minimum

    @property
    def maximum(self) -> float | None:
        return self.spec.maximum

    @property
    def help(self) -> str:
        # The same words as the service's own "allowed" in its error messages.
        return f"{self.spec.description} Allowed: {self.spec.allowed()}.".strip()

    @property
    def placeholder(self) -> str:
        if self.widget == "choice":
            return "choose"
        return f"{_number(self.minimum)} to {_number(self.maximum)}"

    def label_for(self, option: Any) -> str:
        """How a choice is shown: flags (0/1) read as no/yes."""
        if self.options == (0, 1):
            return f"{option} ({'yes' if option else 'no'})"
        return str(option)

    def to_json(self, value: Any) -> Any:
        """The value as the service's schema wants it: integers as integers."""
        if value is None:
            return None
        if self.spec.kind == "integer":
            return int(value)
        if self.spec.kind == "number":
            return float(value)
        return value


def published_spec(described: Mapping[str, Any]) -> FeatureSpec:
    """A feature as `GET /v2/model` describes it (the inverse of `FeatureSpec.as_json`)."""
    return FeatureSpec(
        name=str(described["name"]),
        kind=described["type"],
        description=str(described.get("description") or ""),
        minimum=_bound(described.get("minimum")),
        maximum=_bound(described.get("maximum")),
        categories=tuple(str(c) for c in described.get("categories") or ()),
    )


def form_fields(
    feature_schema: Sequence[Mapping[str, Any]], json_schema: Mapping[str, Any] | None = None
) -> list[FormField]:
    """The form's inputs, in the service's feature order, each titled as the service's
    JSON schema titles it (`customer_json_schema`)."""
    names = titles(json_schema)
    return [_field(published_spec(d), names.get(str(d["name"]), "")) for d in feature_schema]


def titles(json_schema: Mapping[str, Any] | None) -> dict[str, str]:
    """Each feature's title in a published JSON schema, by name."""
    properties = (json_schema or {}).get("properties") or {}
    return {
        str(name): str(described["title"])
        for name, described in properties.items()
        if isinstance(described, Mapping) and described.get("title")
    }


def _field(spec: FeatureSpec, title: str) -> FormField:
    if spec.kind == "category":
        return FormField(spec, "choice", spec.categories, title)
    low, high = spec.minimum, spec.maximum
    if spec.kind == "integer":
        if low is not None and high is not None and high - low < _MAX_CHOICES:
            return FormField(spec, "choice", tuple(range(int(low), int(high) + 1)), title)
        return FormField(spec, "integer", title=title)
    return FormField(spec, "number", title=title)


def customer_payload(
    fields: Sequence[FormField], values: Mapping[str, Any], customer_id: str
) -> dict[str, Any]:
    """The JSON customer the service expects; fields left empty are left out.

    Missing values are not guessed: the service answers with what is missing.
    """
    payload: dict[str, Any] = {}
    if customer_id.strip():
        payload[ID_COLUMN] = customer_id.strip()
    for field in fields:
        value = field.to_json(values.get(field.name))
        if value is not None:
            payload[field.name] = value
    return payload


def template_csv(feature_schema: Sequence[Mapping[str, Any]]) -> bytes:
    """A CSV header the service accepts: the id column, then every feature."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        [ID_COLUMN, *(str(spec["name"]) for spec in feature_schema)]
    )
    return buffer.getvalue().encode("utf-8")


def column_guide(feature_schema: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """What each CSV column accepts, for the table beside the upload."""
    guide = [{"column": ID_COLUMN, "accepts": "optional text, echoed back in the results"}]
    for described in feature_schema:
        spec = published_spec(described)
        guide.append({"column": spec.name, "accepts": spec.allowed()})
    return guide


def _bound(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{int(value):,}" if value == int(value) else f"{value:,}"
