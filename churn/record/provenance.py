"""Where a served model came from: made here by `churn train`, or imported from a pickle
made elsewhere, with the libraries that made it and the parity check that let it in.

Recorded in the model's metadata (`churn.model.artifact.ModelMetadata.provenance`) and
shown as it is by `GET /v2/model` and the UI.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PARITY_TOLERANCE = 1e-6


class Parity(BaseModel):
    """The exported model against the original, on the same customers, before storing."""

    model_config = ConfigDict(frozen=True)

    customers: int = Field(description="How many customers both models scored.")
    probe: str = Field(
        description='Which customers: e.g. "reference data X.csv" or '
        '"generated: every category and each feature\'s range".'
    )
    labels_differ: int = Field(description="Customers whose label differs (0 to be stored).")
    max_abs_probability_diff: float
    tolerance: float = PARITY_TOLERANCE


class Provenance(BaseModel):
    """A model imported from a file made elsewhere (absent for one `churn train` made)."""

    model_config = ConfigDict(frozen=True)

    source_file: str = Field(description="The original file's name.")
    source_sha256: str = Field(description="The original file's SHA-256, verified at import.")
    made_with: dict[str, str] = Field(
        description='Library -> version that made the pickle, e.g. {"scikit-learn": "1.6.1"}.'
    )
    exported_with: dict[str, str] = Field(
        description="Versions of the environment that unpickled and exported it."
    )
    imported_at: str
    parity: Parity


# How the sentence names each library, in this order; others follow as they are.
_SHOWN = {"scikit-learn": "scikit-learn", "xgboost": "XGBoost"}


def made_with_text(made_with: dict[str, str]) -> str:
    """'scikit-learn 1.6.1, XGBoost 2.1.4'."""
    names = [*(n for n in _SHOWN if n in made_with), *(n for n in made_with if n not in _SHOWN)]
    return ", ".join(f"{_SHOWN.get(name, name)} {made_with[name]}" for name in names)


def imported_origin(provenance: Provenance) -> str:
    """'imported from X.joblib (scikit-learn 1.6.1, XGBoost 2.1.4); parity on 3,000
    customers: 0 labels differ'."""
    parity = provenance.parity
    libraries = made_with_text(provenance.made_with)
    made = f" ({libraries})" if libraries else ""
    differ = "label differs" if parity.labels_differ == 1 else "labels differ"
    return (
        f"imported from {provenance.source_file}{made}; parity on {parity.customers:,} "
        f"customers: {parity.labels_differ:,} {differ}"
    )


def trained_origin(data_file: str | None) -> str:
    """'trained here by churn train on DATA'."""
    return f"trained here by churn train on {data_file}" if data_file else "trained here"
