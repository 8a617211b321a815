"""BentoML's own client, `bentoml.SyncHTTPClient`, as README.md's "From Python" uses it.

Its methods are the service's BentoML APIs (`predict`, `explain`), built from the
service's /schema.json; they answer as the routes and `ChurnClient` do.
"""

from __future__ import annotations

import bentoml

from churn.clients.client import ChurnClient
from tests.conftest import LiveService
from tests.factories import EXAMPLE_CUSTOMER


def test_predict_and_explain_through_bentomls_client(live_service: LiveService) -> None:
    customers = [{"CustomerId": "15634602", **EXAMPLE_CUSTOMER}, EXAMPLE_CUSTOMER]

    with bentoml.SyncHTTPClient(live_service.url) as client:
        predicted = client.predict(customers=customers)
        explained = client.explain(customer=EXAMPLE_CUSTOMER)

    with ChurnClient(live_service.url) as ours:
        assert predicted == [p.model_dump(mode="json") for p in ours.predict(customers)]
        assert explained == ours.explain(EXAMPLE_CUSTOMER).model_dump(mode="json")
    assert predicted[0]["CustomerId"] == "15634602"
    assert {factor["feature"] for factor in explained["factors"]} >= {"Age", "Geography"}
