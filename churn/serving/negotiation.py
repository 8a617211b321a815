"""The output format of `/v2/predict-file`: `?format=`, the form field, then `Accept`."""

from __future__ import annotations

from churn.record.errors import BadRequest, InvalidInput, Problem
from churn.scoring.files import OutputFormat
from churn.serving.errors import NotAcceptable

JSON = "application/json"

MEDIA_TYPES: dict[OutputFormat, str] = {"csv": "text/csv", "json": JSON}  # preferred first
FORMAT_SCHEMA = {"type": "string", "enum": list(MEDIA_TYPES)}
NEGOTIATION = (
    "The answer is CSV or JSON. An explicit choice wins: the query parameter `?format=` "
    "or the form field `format` (`csv` or `json`; if both are sent they must agree, or the "
    "answer is a 422 naming both). Otherwise the `Accept` header decides, with q-values: "
    "`text/csv`, `text/*` or `*/*` gives CSV, `application/json` or `application/*` gives "
    "JSON; on a tie the more specific media range wins, then CSV. No Accept header, or one "
    "that cannot be parsed, gives CSV. An Accept header that admits neither is a 406."
)


def negotiated_format(query: list[str], form: str | None, accept: str) -> OutputFormat:
    """The output format of `/v2/predict-file`, by the precedence in `NEGOTIATION`.

    `query` holds every `format` query parameter sent, `form` the form field (the
    upload reader has refused it sent twice), `accept` the Accept header(s) joined.
    A value other than csv or json is a 422, as any value outside a documented enum is;
    406 is for Accept, which client libraries send without the caller choosing it.
    """
    if len(query) > 1:
        raise BadRequest("Send the query parameter 'format' once.")
    if query and form is not None and query[0] != form:
        raise InvalidInput(
            f"The query parameter format={query[0]} and the form field format={form} "
            "disagree; send one of them, or the same in both.",
            [
                Problem(f"is {query[0]!r}, the form field format {form!r}", field="query.format"),
                Problem(f"is {form!r}, the query parameter format {query[0]!r}", field="format"),
            ],
        )
    if query or form is not None:
        field, where = ("query.format", "query parameter") if query else ("format", "form field")
        value = query[0] if query else form
        if value not in MEDIA_TYPES:
            raise InvalidInput(
                f"The {where} 'format' must be csv or json.",
                [Problem("is not allowed", field=field, allowed="csv, json")],
            )
        return value
    return _accepted(accept)


def _accepted(accept: str) -> OutputFormat:
    """The format the Accept header prefers (RFC 9110, section 12.5.1).

    A media type's quality is that of the most specific range that matches it; the
    format of highest quality wins, then the one matched more specifically, then CSV.
    """
    ranges = [parsed for part in accept.split(",") if (parsed := _media_range(part))]
    if not ranges:
        return "csv"
    ranked: list[tuple[float, int, int, OutputFormat]] = []
    for preference, (output_format, media_type) in enumerate(MEDIA_TYPES.items()):
        matches = [
            (_specificity(media_range), quality)
            for media_range, quality in ranges
            if media_range in (media_type, media_type.split("/")[0] + "/*", "*/*")
        ]
        if matches:
            specificity, quality = max(matches)
            if quality > 0:
                ranked.append((quality, specificity, -preference, output_format))
    if not ranked:
        shown = accept if len(accept) <= _ACCEPT_CHARS else accept[:_ACCEPT_CHARS] + "..."
        raise NotAcceptable(
            f"This route answers in text/csv or application/json, and the Accept header "
            f"({shown}) admits neither; send Accept: text/csv or application/json, or "
            "?format=csv or ?format=json.",
            [Problem("admits neither", field="Accept", allowed="text/csv, application/json")],
        )
    return max(ranked)[3]


def _specificity(media_range: str) -> int:
    return 0 if media_range == "*/*" else 1 if media_range.endswith("/*") else 2


def _media_range(part: str) -> tuple[str, float] | None:
    """One element of an Accept header as (type/subtype, quality), or None if malformed."""
    media_range, *parameters = (piece.strip() for piece in part.split(";"))
    kind, slash, subtype = media_range.lower().partition("/")
    if not (kind and slash and subtype) or (kind == "*" and subtype != "*"):
        return None
    quality = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return None
            if not 0 <= quality <= 1:
                return None
    return f"{kind}/{subtype}", quality


_ACCEPT_CHARS = 200
