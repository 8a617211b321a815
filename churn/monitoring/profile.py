"""The training data's reference profile, and the one binning of the model's input.

At training every feature gets fixed bins: one per value for a feature with few
distinct values (Tenure, NumOfProducts, the flags), deciles of the training data
otherwise (CreditScore, Age, Balance, EstimatedSalary); one per category for
Geography; deciles for the model's score. The profile keeps those bins and how many
training customers fell in each, and nothing else: no customer's values.

`Binner` puts rows of the model's input matrix (`Scorer.matrix`, float32, one-hot
Geography) and their scores into those bins. Training, the service and `churn drift`
all use it, on the same float32 values, so that the same customers give the same
counts everywhere. Each column's values are shifted into a range of their own so that
one `searchsorted` over all columns' edges bins a whole row at once; a sentinel after
each column's edges makes the position found the bin's index in the flat count array.
Many rows are binned column by column, on the same shifted values; a whole-valued
column (the flags, Tenure, Age, ...) by counting each of its few values once and adding
those counts to the bins the search gives each value, about a fifth of the search's cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from churn.model.artifact import ModelMetadata
from churn.model.booster import TreeModel
from churn.record.errors import ChurnError, ModelIntegrityError
from churn.record.schema import FEATURE_SPECS, SPECS_BY_NAME

# Every column's values lie in [0, SPAN / 2): the schema's bounds (checked below), the
# one-hot columns and the score.
SPAN = float(2**30)
DISCRETE_VALUES = 12  # at most this many distinct values: a bin per value
DECILES = np.linspace(0.1, 0.9, 9)
SCORE_DIGITS = 4

BinKind = Literal["integer", "number", "category", "score"]


class Bins(BaseModel):
    """One feature's bins (or the score's) and the training customers in each."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: BinKind
    edges: list[float] = Field(
        default_factory=list,
        description="Bin i > 0 holds values from edges[i-1] (included) to edges[i].",
    )
    categories: list[str] = Field(default_factory=list)
    counts: list[int]

    def labels(self) -> list[str]:
        """The bins in words, for people: "18-30", "3", "under 25,000", "12.5%-17.0%"."""
        if self.kind == "category":
            return list(self.categories)
        if not self.edges:
            return ["all"]
        if self.kind == "integer":
            spec = SPECS_BY_NAME[self.name]
            lows = [int(spec.minimum or 0), *(int(e) for e in self.edges)]
            highs = [*(int(e) - 1 for e in self.edges), int(spec.maximum or 0)]
            pairs = zip(lows, highs, strict=True)
            return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in pairs]
        shown = [_percent(e) if self.kind == "score" else f"{e:,.0f}" for e in self.edges]
        middle = [f"{lo} to {hi}" for lo, hi in itertools.pairwise(shown)]
        return [f"under {shown[0]}", *middle, f"{shown[-1]} and over"]


def _percent(value: float) -> str:
    return f"{value:.1%}"


class ReferenceProfile(BaseModel):
    """The training data as the drift statistics see it: bins and counts, no values."""

    model_config = ConfigDict(frozen=True)

    rows: int
    features: list[Bins]
    score: Bins
    score_source: str = Field(description="Which scores the score's bins were counted from.")

    def all_bins(self) -> list[Bins]:
        return [*self.features, self.score]


class NoReferenceProfile(ChurnError):
    """The model has no reference profile (imported without reference data, or trained
    before profiles existed): there is nothing to compare with."""

    status_code = 409
    code = "no_reference_profile"


def no_reference_message(metadata: ModelMetadata) -> str:
    how = (
        "import it again with `churn import-model --reference-data CSV --force`"
        if metadata.provenance is not None
        else "retrain it with `churn train`"
    )
    return (
        f"Model {metadata.model_name} {metadata.model_version} has no reference profile of "
        f"the customers it was made for, so drift cannot be measured; {how}."
    )


def reference_of(metadata: ModelMetadata) -> ReferenceProfile:
    if not metadata.reference_profile:
        raise NoReferenceProfile(no_reference_message(metadata))
    return ReferenceProfile.model_validate(metadata.reference_profile)


def input_columns(model: TreeModel) -> list[str]:
    """The model's input columns by name: Geography_France, ..., CreditScore, ..."""
    return [column.name for column in model.columns]


class Binner:
    """Bins the model's input matrix and scores into the profile's bins, all at once."""

    def __init__(self, profile: ReferenceProfile, columns: Sequence[str]) -> None:
        # The score first: unshifted, its values keep every digit (a column shifted by n
        # SPANs compares to within n * SPAN * 2**-53; other columns' values are coarser).
        column_edges = [profile.score.edges]
        column_edges += [_edges_of_column(profile, column) for column in columns]
        edges: list[float] = []
        starts: list[int] = []
        for index, own in enumerate(column_edges):
            starts.append(len(edges))
            # The sentinel lies above every value of this column, below the next one's.
            edges += [index * SPAN + edge for edge in own] + [index * SPAN + SPAN / 2]
        self.width = len(edges)
        self.columns = len(column_edges)  # the score, and the matrix's
        self.edges = np.asarray(edges, dtype=np.float64)
        self.shift = np.arange(self.columns, dtype=np.float64) * SPAN
        self._column_bins = [
            _ColumnBins.of(start, self.edges[start:stop], float(shift), _whole_values(name))
            for start, stop, shift, name in zip(
                starts, [*starts[1:], self.width], self.shift, [None, *columns], strict=True
            )
        ]
        self._customers = slice(starts[0], starts[1])
        self._gather = {profile.score.name: np.arange(starts[0], starts[1], dtype=np.intp)}
        start_of = dict(zip(columns, starts[1:], strict=True))
        for bins in profile.features:
            if bins.kind == "category":
                # A one-hot column's second bin holds the customers of its category.
                where = [start_of[f"{bins.name}_{c}"] + 1 for c in bins.categories]
            else:
                first = start_of[bins.name]
                where = list(range(first, first + len(bins.edges) + 1))
            self._gather[bins.name] = np.asarray(where, dtype=np.intp)

    def counts(self, matrix: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The flat count array of the rows of the model's input matrix and their scores."""
        counts = np.zeros(self.width, dtype=np.int64)
        for bins, values in zip(self._column_bins, (scores, *matrix.T), strict=True):
            counts[bins.start : bins.start + len(bins.edges)] += bins.count(values)
        return counts

    def customers(self, counts: np.ndarray) -> int:
        """How many customers the counts hold: every customer is in one bin of each column."""
        return int(counts[self._customers].sum())

    def split(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """The flat counts as each feature's (and the score's) bins, in the profile's order."""
        return {name: counts[where] for name, where in self._gather.items()}


@dataclass(frozen=True)
class _ColumnBins:
    """One column's place in the flat count array, its shifted edges (its sentinel last),
    and for a whole-valued column the bin of each of its values, found by the same search
    on the same shifted values."""

    start: int
    edges: np.ndarray
    shift: float
    lowest: int = 0
    bin_of_value: np.ndarray | None = None

    @classmethod
    def of(
        cls, start: int, edges: np.ndarray, shift: float, whole: tuple[int, int] | None
    ) -> _ColumnBins:
        if whole is None:
            return cls(start, edges, shift)
        lowest, highest = whole
        values = np.arange(lowest, highest + 1, dtype=np.float64) + shift
        return cls(start, edges, shift, lowest, np.searchsorted(edges, values, side="right"))

    def count(self, values: np.ndarray) -> np.ndarray:
        """How many values fall in each of this column's bins."""
        if self.bin_of_value is not None and len(values):
            whole = values.astype(np.int64) - self.lowest
            if (
                whole.min() >= 0
                and whole.max() < len(self.bin_of_value)
                and np.array_equal(whole + self.lowest, values)
            ):
                per_value = np.bincount(whole, minlength=len(self.bin_of_value))
                return np.bincount(
                    self.bin_of_value, weights=per_value, minlength=len(self.edges)
                ).astype(np.int64)
        positions = np.searchsorted(self.edges, values.astype(np.float64) + self.shift, "right")
        return np.bincount(positions, minlength=len(self.edges))


def _whole_values(column: str | None) -> tuple[int, int] | None:
    """The range of a column that holds whole numbers only: an integer feature or a
    one-hot category column; None for the score and decimal features."""
    if column is None:
        return None
    spec = SPECS_BY_NAME.get(column)
    if spec is None:
        return (0, 1)  # Geography_France, ...: one-hot
    if spec.kind == "integer" and spec.minimum is not None and spec.maximum is not None:
        return int(spec.minimum), int(spec.maximum)
    return None


def _edges_of_column(profile: ReferenceProfile, column: str) -> list[float]:
    for bins in profile.features:
        if bins.kind != "category" and column == bins.name:
            return bins.edges
        if bins.kind == "category" and column in {f"{bins.name}_{c}" for c in bins.categories}:
            return [0.5]
    raise ModelIntegrityError(f"The model's input column {column} is not in its reference profile.")


def _check_ranges() -> None:
    for spec in FEATURE_SPECS:
        if spec.kind != "category" and not (
            (spec.minimum or 0) >= 0 and (spec.maximum or SPAN) < SPAN / 2
        ):
            raise ModelIntegrityError(f"{spec.name}'s bounds do not fit the binning's range.")


_check_ranges()


def build_reference(
    matrix: np.ndarray, columns: Sequence[str], scores: np.ndarray, *, score_source: str
) -> ReferenceProfile:
    """Bins fixed on the training data's model input (float32) and scores, with counts."""
    features = []
    for spec in FEATURE_SPECS:
        if spec.kind == "category":
            features.append(
                Bins(name=spec.name, kind="category", categories=list(spec.categories), counts=[])
            )
        else:
            values = matrix[:, list(columns).index(spec.name)].astype(np.float64)
            edges = _edges_of(values)
            features.append(Bins(name=spec.name, kind=spec.kind, edges=edges, counts=[]))
    score = Bins(name="score", kind="score", edges=_score_edges(scores), counts=[])
    empty = ReferenceProfile(
        rows=len(matrix), features=features, score=score, score_source=score_source
    )
    binner = Binner(empty, columns)
    counted = binner.split(binner.counts(matrix, scores))
    return empty.model_copy(
        update={
            "features": [
                bins.model_copy(update={"counts": counted[bins.name].tolist()}) for bins in features
            ],
            "score": score.model_copy(update={"counts": counted[score.name].tolist()}),
        }
    )


def _edges_of(values: np.ndarray) -> list[float]:
    distinct = np.unique(values)
    if len(distinct) <= DISCRETE_VALUES:
        return [float(v) for v in distinct[1:]]
    # Values from the data, so that an integer feature's bins start at whole numbers.
    cuts = np.unique(np.quantile(values, DECILES, method="inverted_cdf"))
    return [float(v) for v in cuts[cuts > distinct[0]]]


def _score_edges(scores: np.ndarray) -> list[float]:
    cuts = np.unique(np.round(np.quantile(scores, DECILES), SCORE_DIGITS))
    return [float(v) for v in cuts[cuts > scores.min()]]
