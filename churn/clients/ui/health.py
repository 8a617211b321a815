"""The "Model health" tab: where the model came from, live drift per feature, the score
against training, the card.

Everything comes from the service over HTTP (`GET /v2/model`, `GET /v2/drift`,
`GET /v2/model/card.md`) through `churn.clients.client`; nothing here computes a
statistic of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from churn.clients.client import ChurnClient, ServiceError
from churn.clients.ui.charts import STATUS_COLOURS, distribution_chart, drift_chart
from churn.clients.ui.errors import show_error
from churn.clients.ui.text import plain
from churn.record.answers import DriftReport, ModelInfo, WindowDrift

SINCE_START = "Since the service started"


# Keyed by the service's URL (Streamlit does not hash arguments named with "_").
@st.cache_data(ttl=5, show_spinner=False)
def drift_report(url: str, _client: ChurnClient) -> DriftReport:
    return _client.drift()


@st.cache_data(ttl=300, show_spinner=False)
def model_card(url: str, _client: ChurnClient) -> str:
    return _client.model_card()


def flags_at(info: ModelInfo) -> str:
    """The label rule in words: "at a churn probability of **30%** or more"."""
    if info.label_rule == ">":
        return f"at a churn probability above **{info.threshold:.0%}**"
    return f"at a churn probability of **{info.threshold:.0%}** or more"


def model_origin(info: ModelInfo) -> None:
    """Which model this is and where it came from: made here, or imported with its parity."""
    st.subheader("The model")
    st.markdown(f"`{info.model_tag}`: {plain(info.origin or 'origin not recorded')}.")
    rows = {"Flags a customer": flags_at(info).replace("**", "")}
    provenance = info.provenance
    if provenance is not None:
        parity = provenance.parity
        rows |= {
            "Original file": provenance.source_file,
            "Its SHA-256": provenance.source_sha256,
            "Made with": _versions(provenance.made_with),
            "Exported with": _versions(provenance.exported_with),
            "Imported": when(provenance.imported_at),
            "Parity": f"{parity.customers:,} customers ({parity.probe}): "
            f"{parity.labels_differ:,} labels differ, largest probability difference "
            f"{parity.max_abs_probability_diff:.2g} (tolerance {parity.tolerance:g})",
        }
    elif info.trained_at:
        rows["Trained"] = when(info.trained_at)
    st.table(pd.DataFrame({"": list(rows), "value": list(rows.values())}).set_index(""))


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def model_health(client: ChurnClient, info: ModelInfo, timeout: float) -> None:
    model_origin(info)
    st.divider()
    st.markdown(
        "Are today's customers still like the ones the model learnt from? For each feature "
        "and for the model's score, the population stability index (PSI) of the customers "
        "this service has scored, against the training data: **ok** below 0.1, **warn** from "
        "0.1, **drift** from 0.25; **insufficient** while a window has too few customers "
        "to judge."
    )
    try:
        report = drift_report(client.url, client)
    except ServiceError as error:
        if error.status == 409:  # profiling off: say so, no alarm
            st.info(f"Live drift is not available: {plain(error.message)}", icon=":material/info:")
        else:
            show_error(error, timeout)
    except Exception as error:
        show_error(error, timeout)
    else:
        if report.reference:
            live_drift(report)
        else:
            st.info(
                f"Live drift is not available: {plain(report.message or '')}",
                icon=":material/info:",
            )
    st.divider()
    st.subheader("Model card")
    try:
        # The service escapes the data's values in it (churn.monitoring.document); no HTML.
        st.markdown(model_card(client.url, client), unsafe_allow_html=False)
    except Exception as error:
        show_error(error, timeout)


def live_drift(report: DriftReport) -> None:
    rolling = f"Last {report.rolling.minutes} minutes"
    choice = st.radio("Window", [SINCE_START, rolling], horizontal=True, key="drift_window")
    window: WindowDrift = report if choice == SINCE_START else report.rolling
    customers, drifting, warned = st.columns(3)
    customers.metric("Customers scored", f"{window.customers:,}")
    everything = [*window.features.values(), window.score]
    drifting.metric("In drift", sum(f.status == "drift" for f in everything))
    warned.metric("Warn", sum(f.status == "warn" for f in everything))
    st.caption(
        f"Since {when(report.since)}, summed over {report.workers} worker process"
        f"{'' if report.workers == 1 else 'es'}. The figures change when a window of "
        f"{report.rolling.minutes} minutes of the clock closes, and count a worker's window "
        f"only with {report.thresholds.min_customers} customers or more: fewer could show "
        "individuals, and their PSI is too noisy to judge (insufficient)."
    )
    if st.button("Refresh", key="drift_refresh"):
        drift_report.clear()
        st.rerun()
    table = drift_table(window)
    left, right = st.columns([3, 2])
    left.altair_chart(drift_chart(table, report.thresholds), width="stretch")
    right.dataframe(
        table.style.map(_status_colour, subset=["status"]),
        hide_index=True,
        column_config={"psi": st.column_config.NumberColumn("PSI", format="%.3f")},
    )
    st.altair_chart(
        distribution_chart(window.score, "Churn probability: now against training"),
        width="stretch",
    )
    feature = st.selectbox("A feature's distribution", list(window.features), key="drift_feature")
    if feature:
        chosen = window.features[feature]
        st.altair_chart(
            distribution_chart(chosen, f"{feature}: now against training"), width="stretch"
        )


def drift_table(window: WindowDrift) -> pd.DataFrame:
    rows = [*window.features.items(), ("score", window.score)]
    return pd.DataFrame(
        {
            "feature": [name for name, _ in rows],
            "psi": [result.psi for _, result in rows],
            "status": [result.status for _, result in rows],
        }
    )


def _status_colour(status: object) -> str:
    colour = STATUS_COLOURS.get(str(status), STATUS_COLOURS["insufficient"])
    return f"background-color: {colour}; color: white"


def when(stamp: str) -> str:
    """An ISO time from the service, as people read it."""
    try:
        moment = datetime.fromisoformat(stamp).astimezone(UTC)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M UTC")
