"""Where `/v2/predict-file` spends its time on a big file, stage by stage, in-process.

    .venv/bin/python -m benchmarks.filestages [--layout notebook] [--rows 1000000] [--rounds 3]

Each stage runs alone over the whole file, one after the other, with the service's own
code: receiving the upload (the route's multipart reader, fed the body in 64 KB
messages, as uvicorn hands it over), the quote check, parsing (Arrow, cells as text),
validating, scoring (the model's input matrix and XGBoost), counting the customers into
the drift profile, writing (the results table, its CSV, the duplicate ids' count). Then
`score_file` as the route runs it, its stages overlapped in three threads. Wall and CPU
seconds of this process, the best of `--rounds`; on a shared machine, read the CPU. What
HTTP adds (uvicorn, the middlewares, sending the answer) is the difference to the
upload's end-to-end time in `benchmarks.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request

from benchmarks.run import LAYOUTS, MODEL, layout_csv
from churn.model.artifact import ModelMetadata, load_verified, metadata_path_for
from churn.model.booster import TreeModel
from churn.model.store import LoadedModel
from churn.monitoring.live import scorer_for
from churn.record import csv_header, csv_quotes, csv_reading, validation
from churn.scoring import files
from churn.scoring.predictor import ChurnPredictor
from churn.scoring.results import results_table
from churn.serving.uploads import save_upload
from churn.settings import ServiceSettings

T = TypeVar("T")
MESSAGE_BYTES = 64 * 1024
BOUNDARY = b"churn-benchmark-boundary"


@dataclass
class Figure:
    wall: float = float("inf")
    cpu: float = float("inf")

    def keep_best(self, wall: float, cpu: float) -> None:
        self.wall, self.cpu = min(self.wall, wall), min(self.cpu, cpu)


class Clock:
    """Wall and CPU seconds per stage, summed over a run, best run kept."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self._run: dict[str, list[float]] = {}

    def time(self, stage: str, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        result = work(*args, **kwargs)
        spent = self._run.setdefault(stage, [0.0, 0.0])
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu
        return result

    def end_run(self) -> None:
        for stage, (wall, cpu) in self._run.items():
            self.figures.setdefault(stage, Figure()).keep_best(wall, cpu)
        self._run = {}


def predictor() -> ChurnPredictor:
    """The service's predictor, as `service.py` builds it with the default settings:
    drift profiling on (outside `bentoml serve` its counts go to a scratch directory)."""
    metadata = ModelMetadata.read(metadata_path_for(MODEL))
    tree = TreeModel.from_pipeline(load_verified(MODEL, metadata.artifact_sha256))
    settings = ServiceSettings()
    scorer = scorer_for(
        tree,
        metadata,
        profiling=settings.drift_profiling,
        window_minutes=settings.drift_window_minutes,
        bulk_threads=settings.bulk_threads,
    )
    return ChurnPredictor(LoadedModel(tree, metadata, "churn_model:bundled"), scorer)


def multipart_body(path: Path) -> bytes:
    head = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; '
        b'filename="customers.csv"\r\nContent-Type: text/csv\r\n\r\n'
    )
    return head + path.read_bytes() + b"\r\n--" + BOUNDARY + b"--\r\n"


def receive_upload(body: bytes) -> Path:
    """The route's upload reader on `body`, delivered as uvicorn delivers it."""
    messages = iter(range(0, len(body), MESSAGE_BYTES))

    async def receive() -> dict[str, Any]:
        start = next(messages, None)
        if start is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {
            "type": "http.request",
            "body": body[start : start + MESSAGE_BYTES],
            "more_body": True,
        }

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/predict-file",
        "headers": [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)],
    }
    path, _ = asyncio.run(save_upload(Request(scope, receive)))
    return path


def profile(path: Path, rounds: int) -> dict[str, Figure]:
    model = predictor()
    body = multipart_body(path)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="churn-stages-") as scratch:
        out = Path(scratch) / "results.csv"
        for _ in range(rounds):
            clock.time("upload: multipart body to a file", receive_upload, body).unlink()
            header = csv_header.read_header(path)
            clock.time("quote check", csv_quotes.check_quotes, path, header)
            columns = [name for name in validation.required_columns(True) if name in header.names]
            reader = csv_reading._arrow_batches(path, header, columns, csv_reading.BATCH_ROWS)
            raws: list[validation.Columns] = clock.time("parse: Arrow, cells as text", list, reader)
            batches, first = [], 1
            for raw in raws:
                batches.append(
                    clock.time("validate", validation.validate_raw, raw, first_row=first)
                )
                first += batches[-1].row_count
            scorer = model.scorer
            scores = []
            for each in batches:
                matrix = clock.time("score: the model's input matrix", scorer.matrix, each.features)
                scores.append(
                    clock.time(
                        "score: XGBoost",
                        scorer.probabilities,
                        matrix,
                        bulk=False,
                        observe=False,
                    )
                )
                clock.time("drift profile: counting", scorer.observe, matrix, scores[-1])
            duplicates = files.DuplicateIds()
            with out.open("w", encoding="utf-8", newline="") as handle:
                writer = files._CsvResults(handle)
                for each, probabilities in zip(batches, scores, strict=True):
                    table = clock.time(
                        "write: results table", results_table, model.scorer, each, probabilities
                    )
                    clock.time("write: CSV", writer.write, table)
                    clock.time("write: duplicate ids", duplicates.add, each.ids)
            clock.time("write: duplicate ids", duplicates.count)
            clock.time(
                "score_file, stages overlapped (the route)", files.score_file, model, path, out
            )
            clock.end_run()
    return clock.figures


def report(figures: dict[str, Figure], path: Path, rounds: int) -> str:
    width = max(len(stage) for stage in figures)
    alone = sum(f.cpu for stage, f in figures.items() if not stage.startswith("score_file"))
    lines = [
        f"{path.name} ({path.stat().st_size / 1e6:.0f} MB), best of {rounds} round(s)",
        f"{'stage':<{width}}  {'wall s':>7}  {'CPU s':>7}",
        *(f"{stage:<{width}}  {f.wall:>7.3f}  {f.cpu:>7.3f}" for stage, f in figures.items()),
        f"{'stages alone, summed':<{width}}  {'':>7}  {alone:>7.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=LAYOUTS, default="notebook", help="notebook (default)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is kept (3)")
    args = parser.parse_args(argv)
    path = layout_csv(args.rows, args.layout)
    print(report(profile(path, args.rounds), path, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
