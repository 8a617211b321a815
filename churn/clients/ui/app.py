"""The churn risk page: `streamlit run churn/clients/ui/app.py`.

It talks to the churn service only over HTTP, through `churn.clients.client`; the service's URL
comes from `CHURN_API_URL` (default http://127.0.0.1:3000) and its time limit from
`CHURN_API_TIMEOUT` (seconds, default 30); `CHURN_API_KEY` is sent as the API key where
the service requires one. The form, the CSV template and the grouping of batch results
are built from the schema the service publishes, so a feature added to the model appears
here without a change to this file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from churn.clients.client import ChurnClient
from churn.clients.ui.charts import churn_rate_chart, factors_chart, risk_distribution_chart
from churn.clients.ui.errors import show_error
from churn.clients.ui.form import (
    FormField,
    column_guide,
    customer_payload,
    form_fields,
    template_csv,
    titles,
)
from churn.clients.ui.health import flags_at, model_health, when
from churn.clients.ui.results import BatchResult, churn_rate_by, load_results
from churn.record.answers import Explanation, ModelInfo
from churn.record.schema import CUSTOMER_ID
from churn.settings import ClientSettings

TABLE_ROWS = 1000  # the riskiest customers listed on the page; the download has them all
_ANSWER, _BATCH, _INFO = "churn_answer", "churn_batch", "churn_model_info"


def settings() -> tuple[str, float]:
    """The service's URL and the time limit for each call (churn.settings)."""
    configured = ClientSettings.from_environment()
    return configured.api_url, configured.api_timeout


@st.cache_resource(show_spinner=False, max_entries=8, on_release=ChurnClient.close)
def client_for(url: str, timeout: float) -> ChurnClient:
    return ChurnClient(url, timeout=timeout)


@st.cache_data(ttl=30, show_spinner=False)
def model_info(url: str, timeout: float) -> ModelInfo:
    # Failures are not cached: the next run asks again.
    return client_for(url, timeout).model_info()


# The sidebar: is the service there, and what does it serve --------------------------


def sidebar(client: ChurnClient, timeout: float) -> ModelInfo | None:
    with st.sidebar:
        st.header("Churn service")
        st.caption(client.url)
        if not client.is_live():
            st.error("Not reachable", icon=":material/cancel:")
            st.caption(f"No answer from {client.url} within {min(timeout, 5):g} s.")
            st.button("Check again", key="recheck")
            return None
        if not client.is_ready():
            st.warning(
                "Reachable, not ready yet (loading the model)", icon=":material/hourglass_top:"
            )
            st.button("Check again", key="recheck")
            return None
        try:
            info = model_info(client.url, timeout)
        except Exception as error:
            show_error(error, timeout)
            return None
        st.success("Ready", icon=":material/check_circle:")
        st.metric("Model version", info.model_version)
        made = f"trained {when(info.trained_at)}" if info.trained_at else "imported"
        st.caption(f"`{info.model_tag}`, {made}")
        st.markdown(
            f"Flags a customer {flags_at(info)}; high risk from "
            f"**{info.risk_bands.high_from:.0%}**."
        )
        if "roc_auc" in info.metrics:
            st.caption(f"Held-out ROC-AUC {info.metrics['roc_auc']:.3f}")
        st.button("Check again", key="recheck", on_click=model_info.clear)
    return info


# One customer -----------------------------------------------------------------------


def one_customer(client: ChurnClient, info: ModelInfo, timeout: float) -> None:
    fields = form_fields(info.feature_schema, info.customer_json_schema)
    with st.form("customer"):
        customer_id = st.text_input(
            CUSTOMER_ID, max_chars=64, placeholder="optional", help="Echoed back in the answer."
        )
        columns = st.columns(3)
        values = {}
        for index, field in enumerate(fields):
            with columns[index % len(columns)]:
                values[field.name] = _input(field)
        submitted = st.form_submit_button("Predict churn risk", type="primary")
    if submitted:
        st.session_state.pop(_ANSWER, None)
        try:
            with st.spinner("Asking the churn service…"):
                explained = client.explain(customer_payload(fields, values, customer_id))
        except Exception as error:
            show_error(error, timeout)
            return
        st.session_state[_ANSWER] = explained
    answer = st.session_state.get(_ANSWER)
    if isinstance(answer, Explanation):
        show_answer(answer)


def _input(field: FormField) -> Any:
    key = f"feature_{field.name}"
    if field.widget == "choice":
        return st.selectbox(
            field.label,
            field.options,
            index=None,
            format_func=field.label_for,
            placeholder=field.placeholder,
            help=field.help,
            key=key,
        )
    if field.widget == "integer":
        return st.number_input(
            field.label,
            min_value=None if field.minimum is None else int(field.minimum),
            max_value=None if field.maximum is None else int(field.maximum),
            value=None,
            step=1,
            placeholder=field.placeholder,
            help=field.help,
            key=key,
        )
    return st.number_input(
        field.label,
        min_value=field.minimum,
        max_value=field.maximum,
        value=None,
        step=1000.0,
        format="%.2f",
        placeholder=field.placeholder,
        help=field.help,
        key=key,
    )


def show_answer(answer: Explanation) -> None:
    prediction = answer.prediction
    who = f"Customer {prediction.CustomerId}" if prediction.CustomerId else "This customer"
    st.subheader(f"{who}: {prediction.risk_band} risk")
    probability, label, band = st.columns(3)
    probability.metric("Churn probability", f"{prediction.churn_probability:.1%}")
    label.metric("Prediction", prediction.prediction)
    band.metric("Risk band", prediction.risk_band)
    info = st.session_state.get(_INFO)
    names = titles(info.customer_json_schema) if isinstance(info, ModelInfo) else {}
    st.altair_chart(factors_chart(answer, names), width="stretch")
    st.caption(
        "Each bar is one feature's exact contribution (TreeSHAP) to this customer's "
        "log-odds of churn, against an average customer: to the right it raises the risk, "
        f"to the left it lowers it. Model version {prediction.model_version}."
    )


# A file of customers ----------------------------------------------------------------


def file_of_customers(client: ChurnClient, info: ModelInfo, timeout: float) -> None:
    st.markdown(
        "Upload a CSV with a header row: the columns below, in any order (other columns "
        "are ignored). Every row comes back, scored or rejected with its reasons."
    )
    st.download_button(
        "Download a template CSV",
        template_csv(info.feature_schema),
        file_name="churn-customers-template.csv",
        mime="text/csv",
        on_click="ignore",
    )
    with st.expander("What each column accepts"):
        st.dataframe(column_guide(info.feature_schema), hide_index=True)
    upload = st.file_uploader("Customer CSV", type=["csv"], key="customers_csv")
    if upload is None:
        st.session_state.pop(_BATCH, None)
        return
    if st.button("Score this file", type="primary"):
        st.session_state.pop(_BATCH, None)
        try:
            result = score_upload(client, upload.name, upload.getvalue(), info)
        except Exception as error:
            show_error(error, timeout)
            return
        st.session_state[_BATCH] = (upload.file_id, result)
    stored = st.session_state.get(_BATCH)
    if stored is not None and stored[0] == upload.file_id:
        show_batch(stored[1], info)


def score_upload(client: ChurnClient, name: str, content: bytes, info: ModelInfo) -> BatchResult:
    groups = [str(s["name"]) for s in info.feature_schema if s.get("type") == "category"]
    bar = st.progress(0.0, text="Uploading…")
    with tempfile.TemporaryDirectory(prefix="churn-ui-") as folder:
        upload, results = Path(folder) / "upload.csv", Path(folder) / "results.csv"
        upload.write_bytes(content)
        summary = client.predict_file(upload, results, progress=_progress(bar))
        bar.progress(1.0, text="Reading the results…")
        result = load_results(results, upload, groups, name, summary)
    bar.empty()
    return result


def _progress(bar: Any) -> Callable[[int, int], None]:
    shown = [-1]

    def report(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent == shown[0]:
            return
        shown[0] = percent
        if percent < 100:
            bar.progress(percent / 100 * 0.9, text=f"Uploading… {percent}%")
        else:
            bar.progress(0.9, text="Uploaded; the service is scoring the file…")

    return report


def show_batch(result: BatchResult, info: ModelInfo) -> None:
    summary = result.summary
    st.subheader(f"Results for {result.file_name}")
    rows, scored, rejected, churn = st.columns(4)
    rows.metric("Rows in the file", f"{summary.rows_in:,}")
    scored.metric("Rows scored", f"{summary.rows_scored:,}")
    rejected.metric("Rows rejected", f"{summary.rows_rejected:,}")
    churn.metric("Predicted to churn", f"{result.churn_share:.1%}")
    st.caption(
        f"{summary.predicted_churn:,} of {summary.rows_scored:,} scored customers are "
        f"predicted to churn (model version {summary.model_version})."
    )
    if summary.rows_rejected:
        st.warning(
            f"{summary.rows_rejected:,} {_rows(summary.rows_rejected)} rejected and not "
            "scored; fix them and upload them again:",
            icon=":material/warning:",
        )
        st.dataframe(
            result.rejected[["row", CUSTOMER_ID, "errors"]],
            hide_index=True,
            column_config={"errors": st.column_config.TextColumn("reasons", width="large")},
        )
    scored_rows = result.scored
    if scored_rows.empty:
        return
    groups = [str(s["name"]) for s in info.feature_schema if s.get("type") == "category"]
    charts = st.columns(1 + len(groups))
    charts[0].altair_chart(risk_distribution_chart(scored_rows, info.risk_bands), width="stretch")
    for column, place in zip(groups, charts[1:], strict=True):
        rates = churn_rate_by(scored_rows, column)
        place.altair_chart(churn_rate_chart(rates, column), width="stretch")
    ranked = result.by_risk()
    shown = ranked.head(TABLE_ROWS)
    st.markdown(
        "**Customers by risk**"
        + (f" (the {TABLE_ROWS:,} riskiest of {len(ranked):,})" if len(ranked) > TABLE_ROWS else "")
    )
    st.dataframe(
        shown[["row", CUSTOMER_ID, "churn_probability", "prediction", "risk_band", *groups]],
        hide_index=True,
        column_config={
            "churn_probability": st.column_config.ProgressColumn(
                "churn probability", format="percent", min_value=0.0, max_value=1.0
            ),
            "risk_band": st.column_config.TextColumn("risk band"),
        },
    )
    stem = Path(result.file_name).stem or "customers"
    st.download_button(
        "Download all results (CSV)",
        result.csv_bytes,
        file_name=f"{stem}-churn-results.csv",
        mime="text/csv",
        type="primary",
        on_click="ignore",
    )


def _rows(count: int) -> str:
    return "row was" if count == 1 else "rows were"


# The page ---------------------------------------------------------------------------


def page() -> None:
    st.set_page_config(page_title="Churn risk", page_icon=":material/trending_down:", layout="wide")
    url, timeout = settings()
    try:
        client = client_for(url, timeout)
        info = sidebar(client, timeout)
        st.title("Customer churn risk")
        if info is not None:
            st.session_state[_INFO] = info
        else:
            # Keep the form of the last schema seen, so that a service that went away
            # after the page loaded costs nobody their typing: a submit says what is wrong.
            info = st.session_state.get(_INFO)
        if info is None:
            st.info(
                "The form and the CSV template are built from what the churn service "
                "publishes; they appear as soon as it answers. Use **Check again** in the "
                "sidebar.",
                icon=":material/info:",
            )
            return
        single, batch, health = st.tabs(["One customer", "A file of customers", "Model health"])
        with single:
            one_customer(client, info, timeout)
        with batch:
            file_of_customers(client, info, timeout)
        with health:
            model_health(client, info, timeout)
    except Exception as error:  # the last line of defence: a notice, not a traceback
        show_error(error, timeout)


if __name__ == "__main__":
    st.set_option("client.showErrorDetails", "none")
    st.set_option("client.toolbarMode", "viewer")
    page()
