"""The page, driven by Streamlit's AppTest against the real service on the bundled model."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from churn.clients.client import ChurnClient
from tests.clients.ui.conftest import Gate
from tests.clients.ui.drive import (
    chart_data,
    chart_title,
    charts,
    fill_form,
    metrics,
    notices,
    open_page,
    sample_csv,
    submit,
    upload,
)
from tests.factories import make_customer

pytestmark = pytest.mark.slow


def test_sidebar_shows_a_ready_service_and_its_model_version(page_env: str) -> None:
    page = open_page()
    with ChurnClient(page_env) as client:
        info = client.model_info()
    assert not page.exception
    assert [s.value for s in page.sidebar.success] == ["Ready"]
    assert {m.label: m.value for m in page.sidebar.metric} == {"Model version": info.model_version}
    assert page_env in [c.value for c in page.sidebar.caption]


def test_the_form_is_the_published_schema(page_env: str) -> None:
    page = open_page()
    with ChurnClient(page_env) as client:
        info = client.model_info()
    schema = info.feature_schema
    inputs = {
        str(w.key).removeprefix("feature_"): w
        for w in [*page.number_input, *page.selectbox]
        if str(w.key).startswith("feature_")
    }
    assert sorted(inputs) == sorted(spec["name"] for spec in schema)
    titles = {n: p["title"] for n, p in info.customer_json_schema["properties"].items()}
    for spec in schema:
        widget = inputs[spec["name"]]
        # Labelled in the schema's words ("Credit score"), not by the column name.
        assert widget.label == titles[spec["name"]]
        if spec["name"] != "Age":  # the one feature whose column name is a word
            assert widget.label != spec["name"]
        if spec["type"] == "category":
            assert list(widget.options) == spec["categories"]
        elif widget.type == "number_input":
            assert (widget.min, widget.max) == (spec["minimum"], spec["maximum"])
        else:  # a small integer range is offered as a choice
            first, last = int(spec["minimum"]), int(spec["maximum"])
            assert [int(o.split()[0]) for o in widget.options] == list(range(first, last + 1))
        assert widget.value is None  # nothing is guessed for the analyst


def test_submitting_the_form_shows_the_risk_and_its_factors(page_env: str) -> None:
    customer = make_customer(Geography="Germany", Age=52, IsActiveMember=0)
    page = submit(fill_form(open_page(), customer, customer_id="C-123"))
    with ChurnClient(page_env) as client:
        expected = client.explain({**customer, "CustomerId": "C-123"})
        properties = client.model_info().customer_json_schema["properties"]

    assert not page.exception
    shown = metrics(page)
    assert shown["Churn probability"] == f"{expected.prediction.churn_probability:.1%}"
    assert shown["Prediction"] == expected.prediction.prediction
    assert shown["Risk band"] == expected.prediction.risk_band
    assert page.subheader[0].value == f"Customer C-123: {expected.prediction.risk_band} risk"
    (chart,) = charts(page.tabs[0])  # "One customer"
    assert chart_title(chart) == "What drives this customer's risk"
    drawn = chart_data(chart)
    features = [label.split(" = ")[0] for label in drawn["factor"]]
    # Largest effect first, each in the schema's words.
    assert features == [properties[f.feature]["title"] for f in expected.factors]
    assert drawn["contribution"].tolist() == [f.contribution for f in expected.factors]
    assert "Country = Germany" in drawn["factor"].tolist()


def test_bad_input_shows_the_services_own_message(page_env: str) -> None:
    partial = {k: v for k, v in make_customer().items() if k not in ("Age", "Balance")}
    page = submit(fill_form(open_page(), partial))
    assert not page.exception
    text = notices(page)
    assert "The service did not accept the input" in text
    (reasons,) = [m.value for m in page.markdown if m.value.startswith("- ")]
    assert [line.split(" \\(")[0] for line in reasons.splitlines()] == [
        "- Age: Field required",
        "- Balance: Field required",
    ]
    assert "Churn probability" not in metrics(page)


def test_batch_upload_summary_charts_table_and_download(page_env: str) -> None:
    content = sample_csv(60)
    page = upload(open_page(), "branch.csv", content)

    assert not page.exception, page.exception
    shown = metrics(page)
    assert shown["Rows in the file"] == "62"
    assert shown["Rows scored"] == "60"
    assert shown["Rows rejected"] == "2"
    assert "2 rows were rejected" in notices(page)

    batch = page.tabs[1]  # "A file of customers"
    rejected, ranked = batch.dataframe[-2].value, batch.dataframe[-1].value
    assert rejected["row"].tolist() == [61, 62]
    assert rejected["CustomerId"].tolist() == ["15699998", "15699999"]  # from the file
    assert "Geography" in rejected["errors"].iloc[0]
    assert "Age" in rejected["errors"].iloc[1]

    probabilities = ranked["churn_probability"].tolist()
    assert probabilities == sorted(probabilities, reverse=True)
    assert len(ranked) == 60
    # Geography comes from the uploaded file, joined by row number.
    source = pd.read_csv(io.BytesIO(content)).reset_index(names="index")
    by_id = dict(zip(source["CustomerId"].astype(str), source["Geography"], strict=True))
    pairs = zip(ranked["CustomerId"], ranked["Geography"], strict=True)
    assert all(by_id[str(i)] == g for i, g in pairs)

    distribution, rates = charts(batch)
    assert chart_title(distribution) == "Risk distribution"
    assert chart_title(rates) == "Predicted churn rate by Geography"
    drawn = chart_data(rates)
    expected = ranked.assign(churn=ranked["prediction"] == "churn").groupby("Geography")
    assert dict(zip(drawn["Geography"], drawn["customers"], strict=True)) == dict(expected.size())
    assert dict(zip(drawn["Geography"], drawn["churn_rate"], strict=True)) == pytest.approx(
        dict(expected["churn"].mean())
    )

    share = shown["Predicted to churn"]
    churners = (ranked["prediction"] == "churn").sum()
    assert share == f"{churners / 60:.1%}"

    downloads = {d.proto.label for d in page.get("download_button")}
    assert downloads == {"Download a template CSV", "Download all results (CSV)"}


def test_a_file_without_the_columns_shows_the_services_message(page_env: str) -> None:
    page = upload(open_page(), "wrong.csv", b"name,age\nAda,36\n")
    assert not page.exception
    text = notices(page)
    assert "The service did not accept the input" in text
    assert "missing required columns" in text


def test_a_stopped_service_is_a_notice_not_a_traceback(gate: Gate) -> None:
    page = fill_form(open_page(), make_customer(), customer_id="C-9")
    assert [s.value for s in page.sidebar.success] == ["Ready"]
    gate.close()

    page = submit(page)
    assert not page.exception
    assert [e.value for e in page.sidebar.error] == ["Not reachable"]
    assert "The churn service is not answering" in notices(page)
    assert "Churn probability" not in metrics(page)

    page = upload(page, "branch.csv", sample_csv(5))
    assert not page.exception
    assert notices(page).count("The churn service is not answering") >= 1
    assert "Rows scored" not in metrics(page)


def test_a_silent_service_is_a_notice_after_the_time_limit(gate: Gate) -> None:
    page = fill_form(open_page(), make_customer())
    gate.stall()
    page = submit(page)
    assert not page.exception
    assert "took longer than 3 s" in notices(page)


def test_a_service_down_from_the_start_explains_why_there_is_no_form(gate: Gate) -> None:
    gate.close()
    page = open_page()
    assert not page.exception
    assert [e.value for e in page.sidebar.error] == ["Not reachable"]
    assert "appear as soon as it answers" in notices(page)
    assert not page.number_input
