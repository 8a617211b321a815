"""Customers for the model-health tests: drawn like the training data, and shifted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churn.model.synth import synthesize

SHIFTED_AGE = 20


def like_training(rows: int, seed: int) -> pd.DataFrame:
    """Customers in the public layout, drawn as the bundled model's training data was."""
    return synthesize(rows, seed=seed)


def shifted(customers: pd.DataFrame) -> pd.DataFrame:
    """The same customers 20 years older (the schema stops at 100) and all in Germany."""
    moved = customers.copy()
    moved["Age"] = np.minimum(moved["Age"] + SHIFTED_AGE, 100)
    moved["Geography"] = "Germany"
    return moved


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
