"""CI's checks that two images (two architectures) answer alike.

python deploy/ci/compare.py scored NATIVE.csv EMULATED.csv ROWS
    two `/v2/predict-file` answers for the same file: ROWS rows each, the same rows,
    ids, statuses and labels, probabilities within 1e-6
python deploy/ci/compare.py flask ANSWER
    the bytes of an old-contract answer are exactly what Flask's `jsonify` sends
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

TOLERANCE = 1e-6


def scored(native: Path, emulated: Path, rows: int) -> str:
    def read(path: Path) -> list[dict[str, str]]:
        with path.open(newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))

    a, b = read(native), read(emulated)
    if not len(a) == len(b) == rows:
        raise SystemExit(f"rows: {len(a)} native, {len(b)} emulated, {rows} in the file")
    worst = 0.0
    for line, (x, y) in enumerate(zip(a, b, strict=True), 2):
        for column in ("row", "CustomerId", "status", "prediction", "risk_band"):
            if x.get(column) != y.get(column):
                raise SystemExit(f"line {line}: {column} {x.get(column)!r} != {y.get(column)!r}")
        if x["status"] != "scored":
            raise SystemExit(f"line {line}: {x['status']}: {x.get('errors')}")
        difference = abs(float(x["churn_probability"]) - float(y["churn_probability"]))
        worst = max(worst, difference)
        # Both sides are rounded to 6 decimals: a difference of one unit there is 1e-6.
        if difference > TOLERANCE * (1 + 1e-9):
            raise SystemExit(f"line {line}: probabilities differ by {difference:.3g}")
    churn = sum(x["prediction"] == "churn" for x in a)
    return f"{rows} rows alike: {churn} churn, largest probability difference {worst:.2g}"


def flask(answer: Path) -> str:
    from flask import Flask

    content = answer.read_bytes()
    app = Flask("old")
    with app.app_context():
        response: Any = app.json.response(json.loads(content))
        expected = bytes(response.get_data())
    if content != expected:
        raise SystemExit(f"{content[:80]!r} is not Flask's {expected[:80]!r}")
    return f"{len(content)} bytes, as Flask's jsonify sends them"


def sbom(installed: Path, document: Path) -> str:
    def normalize(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    have = {normalize(k): v for k, v in json.loads(installed.read_text("utf-8")).items()}
    components = json.loads(document.read_text("utf-8"))["components"]
    listed = {normalize(c["name"]): c["version"] for c in components}
    differ = {k: (have.get(k), listed.get(k)) for k in have.keys() | listed.keys()
              if have.get(k) != listed.get(k)}  # fmt: skip
    if differ:
        raise SystemExit(f"installed != {document.name} (installed, listed): {differ}")
    return f"{len(have)} distributions installed, each in {document.name} at its version"


def main(argv: list[str]) -> None:
    match argv:
        case ["scored", native, emulated, rows]:
            print(scored(Path(native), Path(emulated), int(rows)))
        case ["flask", answer]:
            print(flask(Path(answer)))
        case ["sbom", installed, document]:
            print(sbom(Path(installed), Path(document)))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
