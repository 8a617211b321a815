"""A seeded generator of customers that look like the public bank churn data set.

The generating model, chosen to match the published marginals of the 10,000-customer
data set and the relations analysts know from it:

- Geography: France 50%, Germany 25%, Spain 25%. Gender: 55% male.
- CreditScore ~ Normal(650, 97), rounded, clipped to 350-850.
- Age ~ 18 + LogNormal(log 19, 0.45), rounded, clipped to 18-92 (median near 38,
  long right tail).
- Tenure ~ Uniform{0..10}.
- Balance: zero for 48% of customers in France and Spain and for none in Germany;
  otherwise Normal(120,000, 30,000) clipped to 3,000-250,000, in cents.
- NumOfProducts: 1, 2, 3, 4 with probabilities .51, .46, .027, .006.
- HasCrCard ~ Bernoulli(.70); IsActiveMember ~ Bernoulli(.515).
- EstimatedSalary ~ Uniform(11.58, 199,992.48), in cents.
- Exited ~ Bernoulli(sigmoid(z)) with
      z = b0 + 0.06 a + [a > 0] (0.06 a - 0.0022 a^2), a = Age - 38
                                          [risk rises with age, peaks near 60, then eases]
          + 0.75 [Germany] - 0.95 IsActiveMember + 0.5 [female]
          - 1.3 [2 products] + 2.4 [3 products] + 4.0 [4 products]
          + 0.25 [Balance > 0] - 0.0008 (CreditScore - 650)
  and b0 solved by bisection so that 20% of the drawn customers churn.

So older customers, inactive members, customers in Germany and those with 3-4
products churn more, as in the public data; tenure, card and salary carry no signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES, TARGET

COLUMNS = (
    "RowNumber",
    "CustomerId",
    "Surname",
    "CreditScore",
    "Geography",
    "Gender",
    "Age",
    "Tenure",
    "Balance",
    "NumOfProducts",
    "HasCrCard",
    "IsActiveMember",
    "EstimatedSalary",
    TARGET,
)
CHURN_RATE = 0.20
_SURNAMES = (
    "Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Müller", "Schmidt", "Schneider",
    "Fischer", "Weber", "García", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
)  # fmt: skip


def synthesize(rows: int, seed: int = 42) -> pd.DataFrame:
    """`rows` customers in the public layout, the same for the same seed."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    geography = rng.choice(np.array(GEOGRAPHIES), size=rows, p=[0.5, 0.25, 0.25])
    germany = geography == "Germany"
    female = rng.random(rows) < 0.45
    credit = np.clip(np.round(rng.normal(650, 97, rows)), 350, 850).astype(np.int64)
    age = np.clip(np.round(18 + rng.lognormal(np.log(19), 0.45, rows)), 18, 92).astype(np.int64)
    tenure = rng.integers(0, 11, rows)
    has_balance = germany | (rng.random(rows) >= 0.48)
    balance = np.where(
        has_balance, np.round(np.clip(rng.normal(120_000, 30_000, rows), 3_000, 250_000), 2), 0.0
    )
    products = rng.choice(np.array([1, 2, 3, 4]), size=rows, p=[0.507, 0.46, 0.027, 0.006])
    has_card = (rng.random(rows) < 0.70).astype(np.int64)
    active = (rng.random(rows) < 0.515).astype(np.int64)
    salary = np.round(rng.uniform(11.58, 199_992.48, rows), 2)

    centred_age = age - 38.0
    z = (
        0.06 * centred_age
        + (centred_age > 0) * (0.06 * centred_age - 0.0022 * centred_age**2)
        + 0.75 * germany
        - 0.95 * active
        + 0.5 * female
        - 1.3 * (products == 2)
        + 2.4 * (products == 3)
        + 4.0 * (products == 4)
        + 0.25 * has_balance
        - 0.0008 * (credit - 650)
    )
    intercept = _intercept_for_rate(z, CHURN_RATE)
    exited = (rng.random(rows) < _sigmoid(intercept + z)).astype(np.int64)

    frame = pd.DataFrame(
        {
            "RowNumber": np.arange(1, rows + 1),
            "CustomerId": 15_565_701 + rng.permutation(rows * 10)[:rows],
            "Surname": rng.choice(np.array(_SURNAMES), size=rows),
            "CreditScore": credit,
            "Geography": geography,
            "Gender": np.where(female, "Female", "Male"),
            "Age": age,
            "Tenure": tenure,
            "Balance": balance,
            "NumOfProducts": products,
            "HasCrCard": has_card,
            "IsActiveMember": active,
            "EstimatedSalary": salary,
            TARGET: exited,
        }
    )
    assert tuple(frame.columns) == COLUMNS
    assert set(FEATURE_NAMES) <= set(COLUMNS)
    return frame


def write_synthetic_csv(path: Path, rows: int, seed: int = 42) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthesize(rows, seed).to_csv(path, index=False)
    return path


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _intercept_for_rate(z: np.ndarray, rate: float) -> float:
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        if _sigmoid(middle + z).mean() < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2
