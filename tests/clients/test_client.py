"""The client and `churn predict` against the live service."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churn.clients.client import ChurnClient, ServiceError, ServiceUnavailable
from churn.record.schema import Customer
from tests.conftest import LiveService, free_port, run_churn
from tests.factories import BANK_COLUMNS, EXAMPLE_CUSTOMER, bank_row, make_customer


@pytest.fixture
def client(live_service: LiveService) -> Iterator[ChurnClient]:
    with ChurnClient(live_service.url) as client:
        yield client


def test_health_and_model(client: ChurnClient) -> None:
    assert client.is_live()
    assert client.is_ready()
    info = client.model_info()
    assert info.model_version == "1.0"
    assert [spec["name"] for spec in info.feature_schema] == info.features


def test_predict_and_explain(client: ChurnClient) -> None:
    results = client.predict(
        [Customer.model_validate(make_customer(CustomerId="x1")), EXAMPLE_CUSTOMER]
    )
    assert [r.CustomerId for r in results] == ["x1", None]
    explanation = client.explain(EXAMPLE_CUSTOMER)
    assert explanation.prediction.churn_probability == results[1].churn_probability
    assert client.legacy_customer(EXAMPLE_CUSTOMER) == results[1].prediction


def test_service_errors_keep_the_fields(client: ChurnClient) -> None:
    with pytest.raises(ServiceError) as caught:
        client.predict([make_customer(Age=7)])
    assert caught.value.status == 422
    assert caught.value.is_client_error
    assert [p.field for p in caught.value.problems] == ["customers.0.Age"]

    with pytest.raises(ServiceError) as legacy:
        client.legacy_customer(make_customer(Geography="Narnia"))
    assert legacy.value.status == 422
    assert legacy.value.problems[0].allowed == "one of France, Germany, Spain"


def test_legacy_batch(client: ChurnClient, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("\n".join([BANK_COLUMNS, bank_row(1, 11), bank_row(2, 12)]) + "\n")
    assert set(client.legacy_batch(path)) == {"11", "12"}


def test_service_down_is_a_clear_error() -> None:
    down = ChurnClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert not down.is_live()
    assert not down.is_ready()
    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        down.model_info()


def test_cli_predict_writes_every_row(live_service: LiveService, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(
        "\n".join([BANK_COLUMNS, bank_row(1, 1), bank_row(2, 2, Tenure="-1"), bank_row(3, 3)])
        + "\n"
    )
    out = tmp_path / "scored.csv"
    result = run_churn("predict", str(source), "--url", live_service.url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 rows: 2 scored, 1 rejected" in result.stdout
    assert "uploading" in result.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["row"], r["status"]) for r in rows] == [
        ("1", "scored"),
        ("2", "rejected"),
        ("3", "scored"),
    ]


def test_cli_predict_reports_a_down_service(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(BANK_COLUMNS + "\n" + bank_row() + "\n")
    result = run_churn(
        "predict", str(source), "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2"
    )
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr


class DropsSecondRequest:
    """A real HTTP/1.1 peer on 127.0.0.1 that keeps a connection alive after its first
    answer, then closes it on the next request without answering, as a server recycling
    keep-alive connections may just as a request arrives (bentoml/BentoML#4971, #5540)."""

    ANSWER = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 22\r\n\r\n"
        b'{"Prediction":"churn"}'
    )

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                answered = 0
                while self._read_request(connection):
                    self.requests += 1
                    if answered == 1 and self.connections == 1:
                        break  # the second request on the first connection: dropped
                    connection.sendall(self.ANSWER)
                    answered += 1

    @staticmethod
    def _read_request(connection: Any) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")), 0,
        )  # fmt: skip
        while len(body) < length:
            body += connection.recv(65536)
        return True

    def close(self) -> None:
        self.listener.close()


def test_a_call_that_meets_a_closing_keep_alive_connection_is_sent_again_once() -> None:
    peer = DropsSecondRequest()
    try:
        with ChurnClient(peer.url) as client:
            assert client.legacy_customer(EXAMPLE_CUSTOMER) == "churn"
            assert client.legacy_customer(EXAMPLE_CUSTOMER) == "churn"
    finally:
        peer.close()
    assert (peer.connections, peer.requests) == (2, 3)
