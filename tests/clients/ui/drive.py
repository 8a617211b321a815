"""Driving the page with Streamlit's AppTest, the way a retention analyst would use it.

Shared by the AppTest tests and by the decoupling test's subprocess, so this module
imports nothing but Streamlit and the test factories.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from tests.factories import BANK_COLUMNS, bank_row

APP = Path(__file__).resolve().parents[3] / "churn" / "clients" / "ui" / "app.py"
GEOGRAPHIES = ("France", "Germany", "Spain")


def open_page(timeout: float = 60) -> AppTest:
    """The page, run once: CHURN_API_URL (and CHURN_API_TIMEOUT) must be set by the caller."""
    page = AppTest.from_file(str(APP), default_timeout=timeout)
    return page.run()


def fill_form(page: AppTest, customer: Mapping[str, Any], customer_id: str = "") -> AppTest:
    """Type a customer into the form; features missing from `customer` stay empty."""
    page.text_input[0].set_value(customer_id)
    for widget in [*page.number_input, *page.selectbox]:
        name = str(widget.key).removeprefix("feature_")
        if name in customer:
            widget.set_value(customer[name])
    return page


def submit(page: AppTest) -> AppTest:
    button(page, "Predict churn risk").click()
    return page.run()


def upload(page: AppTest, name: str, content: bytes) -> AppTest:
    page.file_uploader(key="customers_csv").set_value((name, content, "text/csv"))
    page.run()
    button(page, "Score this file").click()
    return page.run()


def button(page: AppTest, label: str) -> Any:
    matches = [b for b in page.button if b.label == label]
    assert matches, f"no button {label!r} on the page: {[b.label for b in page.button]}"
    return matches[0]


def metrics(page: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in page.metric}


def notices(page: AppTest) -> str:
    """Every error, warning and info box on the page, as one text."""
    return "\n".join(str(e.value) for e in [*page.error, *page.warning, *page.info])


def charts(page: AppTest | Any) -> list[Any]:
    """The charts of the page, or of one of its tabs (`page.tabs[i]`)."""
    return list(page.get("vega_lite_chart"))


def chart_title(chart: Any) -> str:
    return str(json.loads(chart.proto.spec)["title"])


def chart_data(chart: Any) -> pd.DataFrame:
    """The rows a chart draws (Streamlit sends them beside the spec, as Arrow)."""
    frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sample_csv(rows: int = 60) -> bytes:
    """A file in the public bank layout with `rows` good records, then two bad ones."""
    lines = [BANK_COLUMNS]
    for row in range(1, rows + 1):
        lines.append(
            bank_row(
                row,
                customer_id=15600000 + row,
                Geography=GEOGRAPHIES[row % 3],
                Age=25 + (row * 13) % 50,
                IsActiveMember=(row // 2) % 2,
                NumOfProducts=1 + (row // 3) % 2,
                Balance=float((row * 3719) % 150_000),
                CreditScore=450 + (row * 37) % 400,
            )
        )
    lines.append(bank_row(rows + 1, customer_id=15699998, Geography="Mars"))
    lines.append(bank_row(rows + 2, customer_id=15699999, Age=7))
    return ("\n".join(lines) + "\n").encode()
