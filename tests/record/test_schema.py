from __future__ import annotations

import pytest
from pydantic import ValidationError

from churn.record.schema import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    FEATURE_SPECS,
    SPECS_BY_NAME,
    Customer,
    CustomerFeatures,
)
from tests.factories import make_customer


def test_specs_derive_from_the_pydantic_model() -> None:
    assert tuple(CustomerFeatures.model_fields) == FEATURE_NAMES
    assert len(FEATURE_NAMES) == 9
    assert CATEGORICAL_FEATURES == ("Geography",)
    assert SPECS_BY_NAME["Geography"].categories == ("France", "Germany", "Spain")
    assert SPECS_BY_NAME["Age"].kind == "integer"
    assert (SPECS_BY_NAME["Age"].minimum, SPECS_BY_NAME["Age"].maximum) == (18, 100)
    assert SPECS_BY_NAME["Balance"].kind == "number"
    assert all(spec.description for spec in FEATURE_SPECS)


def test_valid_customer_with_numeric_id_keeps_the_id_as_text() -> None:
    customer = Customer.model_validate(make_customer(CustomerId=15634602, Extra="ignored"))
    assert customer.CustomerId == "15634602"
    assert customer.Geography == "France"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Geography", "Italy", "'France', 'Germany' or 'Spain'"),
        ("Age", 17, "greater than or equal to 18"),
        ("Age", "40", "valid integer"),
        ("Age", 40.5, "valid integer"),
        ("HasCrCard", True, "valid integer"),
        ("HasCrCard", 2, "less than or equal to 1"),
        ("Balance", "100", "valid number"),
        ("Balance", float("inf"), "finite number"),
        ("NumOfProducts", 0, "greater than or equal to 1"),
    ],
)
def test_invalid_values_name_the_field_and_what_is_allowed(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Customer.model_validate(make_customer(**{field: value}))
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [(field,)]
    assert message in errors[0]["msg"]


def test_whole_numbers_sent_as_floats_are_integers() -> None:
    customer = Customer.model_validate(make_customer(Age=40.0, HasCrCard=1.0, CreditScore=6e2))
    assert (customer.Age, customer.HasCrCard, customer.CreditScore) == (40, 1, 600)
    assert all(type(value) is int for value in (customer.Age, customer.HasCrCard))


def test_missing_field_is_reported() -> None:
    record = make_customer()
    del record["Tenure"]
    with pytest.raises(ValidationError) as caught:
        Customer.model_validate(record)
    assert caught.value.errors()[0]["loc"] == ("Tenure",)


def test_allowed_describes_bounds_in_words() -> None:
    assert SPECS_BY_NAME["CreditScore"].allowed() == "an integer from 300 to 900"
    assert SPECS_BY_NAME["Geography"].allowed() == "one of France, Germany, Spain"


def test_the_published_schema_states_the_bounds_the_model_applies() -> None:
    # JSON Schema knows only minimum/maximum; pydantic wrote ge/le for integers when the
    # float-to-int validator came before the bounds, and clients took 0 as valid.
    properties = Customer.model_json_schema()["properties"]
    for spec in FEATURE_SPECS:
        published = properties[spec.name]
        assert not {"ge", "le"} & set(published), spec.name
        if spec.kind != "category":
            assert (published["minimum"], published["maximum"]) == (spec.minimum, spec.maximum)


def test_the_published_id_schema_is_what_the_model_accepts() -> None:
    (text, number, none) = Customer.model_json_schema()["properties"]["CustomerId"]["anyOf"]
    assert (text["type"], number["type"], none["type"]) == ("string", "integer", "null")
    assert text["pattern"] == r"^[^\x00-\x1f\x7f]+$"
    for value in (number["minimum"], number["maximum"], 2516.0):
        assert Customer.model_validate(make_customer(CustomerId=value)).CustomerId == str(
            int(value)
        )
    for value in (number["minimum"] - 1, number["maximum"] + 1, "a\nb", "", True, 2516.5):
        with pytest.raises(ValidationError):
            Customer.model_validate(make_customer(CustomerId=value))
