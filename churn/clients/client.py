"""A typed Python client for the churn service, over HTTP only.

One `httpx.Client` per `ChurnClient`, keeping its connections alive. The routes are
the service's published contract (its OpenAPI document at /docs.json), so the client
needs neither BentoML nor a schema fetched at start-up. It imports nothing of the
model, so the UI and other teams' tools can use it anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, cast

import httpx
from pydantic import BaseModel

from churn.record.answers import (
    MODEL_CARD_PATH,
    DriftReport,
    Explanation,
    FileSummary,
    ModelInfo,
    Prediction,
)
from churn.record.errors import ChurnError, Problem
from churn.record.schema import Customer
from churn.settings import ClientSettings

CustomerLike = Customer | Mapping[str, Any]
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class ServiceUnavailable(ChurnError):
    """The service cannot be reached, or did not answer in time."""

    status_code = 503
    code = "service_unavailable"


class ServiceError(ChurnError):
    """The service answered with an error; its message and problems are kept."""

    def __init__(self, status: int, message: str, problems: list[Problem]) -> None:
        super().__init__(message, problems)
        self.status = status

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status < 500


class ChurnClient:
    def __init__(
        self, url: str | None = None, *, api_key: str | None = None, timeout: float = 30
    ) -> None:
        configured = ClientSettings.from_environment()
        self.url = url.rstrip("/") if url else configured.api_url
        self._api_key = api_key if api_key is not None else configured.api_key
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def __enter__(self) -> ChurnClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # Health -----------------------------------------------------------------------

    def is_live(self) -> bool:
        return self._probe("/livez")

    def is_ready(self) -> bool:
        return self._probe("/readyz")

    # The new API ------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        return ModelInfo.model_validate(self._json("GET", "/v2/model"))

    def predict(self, customers: Iterable[CustomerLike]) -> list[Prediction]:
        payload = [_customer_json(c) for c in customers]
        answer = self._json("POST", "/v2/predict", json={"customers": payload})
        return [Prediction.model_validate(item) for item in answer]

    def predict_one(self, customer: CustomerLike) -> Prediction:
        return self.predict([customer])[0]

    def explain(self, customer: CustomerLike) -> Explanation:
        answer = self._json("POST", "/v2/explain", json={"customer": _customer_json(customer)})
        return Explanation.model_validate(answer)

    def predict_file(
        self,
        path: Path,
        out: Path,
        *,
        output_format: str = "csv",
        progress: Progress | None = None,
    ) -> FileSummary:
        """Score a CSV file through the service, streaming both ways; results go to `out`."""
        total = path.stat().st_size
        with path.open("rb") as source:
            upload = cast(IO[bytes], _CountingReader(source, total, progress))
            files = {"file": (path.name, upload, "text/csv")}
            try:
                with self._http.stream(
                    "POST",
                    "/v2/predict-file",
                    files=files,
                    data={"format": output_format},
                    timeout=httpx.Timeout(self._timeout, read=None),
                ) as response:
                    if response.is_error:
                        response.read()
                        raise _error_from(response)
                    with out.open("wb") as target:
                        for chunk in response.iter_bytes(1 << 20):
                            target.write(chunk)
                    headers = response.headers
            except httpx.TransportError as error:
                raise self._unavailable(error) from error
        return FileSummary(
            rows_in=int(headers["x-rows-in"]),
            rows_scored=int(headers["x-rows-scored"]),
            rows_rejected=int(headers["x-rows-rejected"]),
            predicted_churn=int(headers["x-predicted-churn"]),
            duplicate_ids=0,
            model_version=headers["x-model-version"],
        )

    # Model health -----------------------------------------------------------------

    def drift(self) -> DriftReport:
        """Live drift of what the service has scored, against the training data."""
        return DriftReport.model_validate(self._json("GET", "/v2/drift"))

    def model_card(self) -> str:
        """The model card, as Markdown."""
        return self._request("GET", MODEL_CARD_PATH + ".md").text

    # The old contract -------------------------------------------------------------

    def legacy_customer(self, customer: CustomerLike) -> str:
        answer = self._json("POST", "/v1/customer", json=_customer_json(customer))
        return str(answer["Prediction"])

    def legacy_batch(self, path: Path) -> dict[str, str]:
        with path.open("rb") as source:
            answer = self._json(
                "POST", "/v1/customerbatch", files={"file": (path.name, source, "text/csv")}
            )
        return {str(key): str(value) for key, value in answer.items()}

    # Plumbing ---------------------------------------------------------------------

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=self._timeout,
                # A connection the service closed while idle is opened again, once.
                transport=httpx.HTTPTransport(retries=1),
            )
        return self._client

    def _json(self, method: str, route: str, **kwargs: Any) -> Any:
        return self._request(method, route, **kwargs).json()

    def _request(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        try:
            try:
                response = self._http.request(method, route, **kwargs)
            except httpx.RemoteProtocolError:
                # The service recycles keep-alive connections (serving.edge); a request
                # that met one closing is sent again, once (scoring changes nothing),
                # unless its body was a file already read.
                if "files" in kwargs:
                    raise
                response = self._http.request(method, route, **kwargs)
        except httpx.TransportError as error:
            raise self._unavailable(error) from error
        if response.is_error:
            raise _error_from(response)
        return response

    def _unavailable(self, error: httpx.TransportError) -> ServiceUnavailable:
        if isinstance(error, httpx.ConnectError):
            return ServiceUnavailable(f"The churn service at {self.url} cannot be reached: {error}")
        return ServiceUnavailable(f"The churn service at {self.url} failed: {error}")

    def _probe(self, route: str) -> bool:
        try:
            response = self._http.get(route, timeout=min(self._timeout, 5))
        except httpx.HTTPError:
            return False
        return response.status_code == 200


class _CountingReader:
    """A file wrapper that reports upload progress as httpx reads it."""

    def __init__(self, source: IO[bytes], total: int, progress: Progress | None) -> None:
        self._source = source
        self._total = total
        self._done = 0
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return chunk

    def fileno(self) -> int:
        # httpx sizes a multipart upload from the file's descriptor; with the size it
        # sends Content-Length, which the service needs to refuse oversized files early.
        return self._source.fileno()

    def __iter__(self) -> Any:
        while chunk := self.read(1 << 16):
            yield chunk


def _customer_json(customer: CustomerLike) -> dict[str, Any]:
    if isinstance(customer, BaseModel):
        return customer.model_dump(mode="json", exclude_none=True)
    return dict(customer)


def _error_from(response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # BentoML wraps some of its own errors in a list
    if not isinstance(body, dict):
        return ServiceError(response.status_code, f"HTTP {response.status_code}", [])
    message = str(body.get("message") or body.get("error") or f"HTTP {response.status_code}")
    problems = [
        Problem(
            str(p.get("message") or p.get("msg") or ""),
            field=p.get("field") or ".".join(str(part) for part in p.get("loc", [])) or None,
            row=p.get("row"),
            allowed=p.get("allowed"),
        )
        for p in body.get("problems") or body.get("detail") or []
        if isinstance(p, dict)
    ]
    return ServiceError(response.status_code, message, problems)
