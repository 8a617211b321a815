"""Factories for customer records in the shapes clients send them."""

from __future__ import annotations

from typing import Any

EXAMPLE_CUSTOMER: dict[str, Any] = {
    "CreditScore": 900,
    "Geography": "France",
    "Age": 67,
    "Tenure": 1,
    "Balance": 120000.50,
    "NumOfProducts": 1,
    "HasCrCard": 0,
    "IsActiveMember": 0,
    "EstimatedSalary": 95000.75,
}

BANK_COLUMNS = (
    "RowNumber,CustomerId,Surname,CreditScore,Geography,Gender,Age,Tenure,Balance,"
    "NumOfProducts,HasCrCard,IsActiveMember,EstimatedSalary,Exited"
)


def make_customer(**overrides: Any) -> dict[str, Any]:
    """A valid customer record as clients send it, with any field overridden."""
    return {**EXAMPLE_CUSTOMER, **overrides}


def bank_row(row: int = 1, customer_id: Any = 15634602, **overrides: Any) -> str:
    """One CSV line in the public bank layout."""
    c = make_customer(**overrides)
    return (
        f"{row},{customer_id},Hargrave,{c['CreditScore']},{c['Geography']},Female,{c['Age']},"
        f"{c['Tenure']},{c['Balance']},{c['NumOfProducts']},{c['HasCrCard']},"
        f"{c['IsActiveMember']},{c['EstimatedSalary']},1"
    )
