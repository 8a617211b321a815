"""Factories for customer records in the shapes clients send them."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from typing import Any

EXAMPLE_CUSTOMER: dict[str, Any] = {
    "CreditScore": 900,
    "Geography": "France",
    "Age": 67,
    "Tenure": 1,
    "Balance": 120000.50,
    "NumOfProducts": 1,
    "HasCrCard": 0,
    "IsActiveMember": 0,
    "EstimatedSalary": 95000.75,
}

BANK_COLUMNS = (
    "RowNumber,CustomerId,Surname,CreditScore,Geography,Gender,Age,Tenure,Balance,"
    "NumOfProducts,HasCrCard,IsActiveMember,EstimatedSalary,Exited"
)


def make_customer(**overrides: Any) -> dict[str, Any]:
    """A valid customer record as clients send it, with any field overridden."""
    return {**EXAMPLE_CUSTOMER, **overrides}


def bank_row(row: int = 1, customer_id: Any = 15634602, **overrides: Any) -> str:
    """One CSV line in the public bank layout."""
    c = make_customer(**overrides)
    return (
        f"{row},{customer_id},Hargrave,{c['CreditScore']},{c['Geography']},Female,{c['Age']},"
        f"{c['Tenure']},{c['Balance']},{c['NumOfProducts']},{c['HasCrCard']},"
        f"{c['IsActiveMember']},{c['EstimatedSalary']},1"
    )


# --- CSV files as hand edits and exports break them ----------------------------------

# Bytes that break CSVs in practice: quotes, separators, line ends, encodings, NUL.
CSV_SNIPPETS = (
    b'"', b",", b";", b"\t", b" ", b"\n", b"\r", b"\r\n", b"\x00", b"\xff",
    b"\xef\xbb\xbf", "\u2028".encode(), b"=", b"nan", b"1e999", b'""',
)  # fmt: skip

# Whole-file layouts that spreadsheets, exports and hand edits produce: spaces after
# commas, CRLF, blank lines between records and before the header, every cell quoted.
CSV_LAYOUTS: tuple[Callable[[bytes], bytes], ...] = (
    lambda data: data.replace(b",", b", "),
    lambda data: data.replace(b"\n", b"\r\n"),
    lambda data: data.replace(b"\n", b"\n\n"),
    lambda data: b"\n \n" + data,
    lambda data: b"\n".join(b'"' + line.replace(b",", b'","') + b'"' for line in data.split(b"\n")),
)


def mutated_csv(content: bytes, rng: random.Random) -> bytes:
    """`content` with layouts applied, then snippets inserted, bytes deleted or random
    bytes added at random; a quote alone goes into a data row often, as stray quotes do."""
    for layout in CSV_LAYOUTS:
        if rng.random() < 0.2:
            content = layout(content)
    data = bytearray(content)
    after_header = content.find(b"\n") + 1
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(len(data) + 1)
        roll = rng.random()
        if roll < 0.3:
            at = rng.randrange(after_header, len(data) + 1)
            data[at:at] = b'"'
        elif roll < 0.6:
            data[position:position] = rng.choice(CSV_SNIPPETS)
        elif roll < 0.85:
            del data[position : position + rng.randint(1, 20)]
        else:
            data[position:position] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


_END = "end-of-file"


def csv_records(upload: bytes) -> int | None:
    """The data records of a CSV as Python's csv module (and a spreadsheet) delimits
    them, blank lines aside; or None for a file to refuse, where a quoted value takes
    in whole records: one that never closes, one over line breaks that holds as many
    commas as a record, or any in the header. A count independent of the service."""
    text = upload.decode("utf-8", "replace").removeprefix("\ufeff")
    records = list(csv.reader(io.StringIO(f"{text}\n{_END}", newline="")))
    kept = [record for record in records if [v.strip() for v in record] not in ([], [""])]
    if kept[-1] != [_END]:
        return None  # the file ends inside a quoted value, which took the line above
    if len(kept) == 1:
        return 0
    width = len(kept[0])
    if any("\n" in value or "\r" in value for value in kept[0]) or any(
        ("\n" in value or "\r" in value) and value.count(",") >= width - 1
        for record in records
        for value in record
    ):
        return None
    return len(kept) - 2  # neither the header nor the end mark
