"""The page's charts, as Altair specifications (drawn by the browser, not the server)."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd

from churn.record.answers import Explanation, FeatureDrift, RiskBands, Thresholds
from churn.record.outcome import BANDS

UP, DOWN = "raises the risk", "lowers the risk"
_DIRECTION_COLOURS = alt.Scale(domain=[UP, DOWN], range=["#c0392b", "#2e86c1"])
_BAND_COLOURS = alt.Scale(domain=list(BANDS), range=["#58a55c", "#f0ad4e", "#c0392b"])
STATUS_COLOURS: dict[str, str] = {  # by DriftStatus
    "ok": "#58a55c",
    "warn": "#e08e0b",
    "drift": "#c0392b",
    "insufficient": "#888888",
}
TRAINING, NOW = "training", "now"


def factors_chart(explanation: Explanation, titles: Mapping[str, str] | None = None) -> alt.Chart:
    """One bar per feature, in `titles`' words: how far it pushes this customer's risk."""
    named = titles or {}
    data = pd.DataFrame(
        {
            "factor": [
                f"{named.get(f.feature, f.feature)} = {_value(f.value)}"
                for f in explanation.factors
            ],
            "contribution": [f.contribution for f in explanation.factors],
            "effect": [UP if f.direction == "up" else DOWN for f in explanation.factors],
        }
    )
    order = data["factor"].tolist()  # the service sends the largest effect first
    chart: alt.Chart = (
        alt.Chart(data, title="What drives this customer's risk")
        .mark_bar()
        .encode(
            x=alt.X("contribution:Q", title="effect on the log-odds of churn"),
            y=alt.Y("factor:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)),
            color=alt.Color("effect:N", scale=_DIRECTION_COLOURS, legend=alt.Legend(title=None)),
            tooltip=["factor", alt.Tooltip("contribution:Q", format="+.3f"), "effect"],
        )
        .properties(height=alt.Step(26))
    )
    return chart


def risk_distribution_chart(scored: pd.DataFrame, bands: RiskBands) -> alt.LayerChart:
    """How the scored customers spread over churn probability, coloured by risk band."""
    bars = (
        alt.Chart(scored[["churn_probability", "risk_band"]])
        .mark_bar()
        .encode(
            x=alt.X(
                "churn_probability:Q",
                bin=alt.Bin(extent=[0, 1], step=0.05),
                title="churn probability",
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("count():Q", title="customers"),
            color=alt.Color(
                "risk_band:N", scale=_BAND_COLOURS, sort=list(BANDS), title="risk band"
            ),
            tooltip=[alt.Tooltip("count():Q", title="customers"), "risk_band"],
        )
    )
    limits = pd.DataFrame(
        {"at": [bands.medium_from, bands.high_from], "limit": ["medium from", "high from"]}
    )
    rules = (
        alt.Chart(limits)
        .mark_rule(strokeDash=[4, 3], color="#555")
        .encode(x="at:Q", tooltip=["limit", alt.Tooltip("at:Q", format=".0%")])
    )
    layered: alt.LayerChart = (bars + rules).properties(title="Risk distribution")
    return layered


def churn_rate_chart(rates: pd.DataFrame, column: str) -> alt.Chart:
    """The share of scored customers predicted to churn, per value of `column`."""
    chart: alt.Chart = (
        alt.Chart(rates, title=f"Predicted churn rate by {column}")
        .mark_bar()
        .encode(
            x=alt.X(f"{column}:N", title=column, sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("churn_rate:Q", title="predicted to churn", axis=alt.Axis(format="%")),
            tooltip=[
                alt.Tooltip(f"{column}:N"),
                alt.Tooltip("customers:Q", title="customers scored"),
                alt.Tooltip("churn_rate:Q", title="predicted to churn", format=".1%"),
            ],
        )
    )
    return chart


def drift_chart(table: pd.DataFrame, thresholds: Thresholds) -> alt.LayerChart:
    """PSI per feature (and the score), coloured by status, with the two thresholds.

    `table` has the columns feature, psi and status.
    """
    statuses = alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values()))
    bars = (
        alt.Chart(table.fillna({"psi": 0.0}))
        .mark_bar()
        .encode(
            x=alt.X("psi:Q", title="PSI against the training data"),
            y=alt.Y("feature:N", sort=None, title=None),
            color=alt.Color("status:N", scale=statuses),
            tooltip=["feature", alt.Tooltip("psi:Q", format=".3f"), "status"],
        )
    )
    limits = pd.DataFrame(
        {"at": [thresholds.warn, thresholds.drift], "limit": ["warn from", "drift from"]}
    )
    rules = (
        alt.Chart(limits)
        .mark_rule(strokeDash=[4, 3], color="#555")
        .encode(x="at:Q", tooltip=["limit", "at:Q"])
    )
    layered: alt.LayerChart = (bars + rules).properties(title="Drift per feature (PSI)")
    return layered


def distribution_chart(drift: FeatureDrift, title: str) -> alt.Chart:
    """Each bin's share of customers now beside its share in the training data (the
    training data's alone while the window has too few customers to show)."""
    now = drift.current or []
    data = pd.DataFrame(
        {
            "bin": drift.bins + drift.bins[: len(now)],
            "share": [*drift.reference, *now],
            "customers": [TRAINING] * len(drift.bins) + [NOW] * len(now),
        }
    )
    chart: alt.Chart = (
        alt.Chart(data, title=title)
        .mark_bar()
        .encode(
            x=alt.X("bin:N", sort=drift.bins, title=None, axis=alt.Axis(labelAngle=-30)),
            xOffset=alt.XOffset("customers:N", sort=[TRAINING, NOW]),
            y=alt.Y("share:Q", title="share of customers", axis=alt.Axis(format="%")),
            color=alt.Color(
                "customers:N",
                scale=alt.Scale(domain=[TRAINING, NOW], range=["#9aa5b1", "#2e86c1"]),
                title=None,
            ),
            tooltip=["bin", "customers", alt.Tooltip("share:Q", format=".1%")],
        )
    )
    return chart


def _value(value: int | float | str) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
