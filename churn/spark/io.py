"""What a batch job reads and writes, through pyarrow's file systems (`pyarrow.fs`).

The driver lists and checks the input, each Spark task reads its own piece of it and
writes its own parts of the output, all with pyarrow, so no row passes through the JVM.
INPUT, DIR and the call list may be local paths or these URIs, on the driver and on
every executor alike:

- `file:///path` or a plain path: the local file system (on a cluster, a shared mount);
- `s3://bucket/key`: Amazon S3;
- `gs://bucket/key` (`gcs://`): Google Cloud Storage;
- `abfs://container@account.dfs.core.windows.net/path` (`abfss://`): Azure Data Lake Gen2;
- `hdfs://namenode:port/path` (`viewfs://`): HDFS, through libhdfs (ARROW_LIBHDFS_DIR,
  CLASSPATH from `hadoop classpath --glob`).

Each process finds its credentials the way its cloud's SDK does (environment variables,
a profile file, the machine's or pod's identity); Spark's `spark.hadoop.*` settings are
Hadoop's and are not read. Hadoop's own connector schemes (s3a://, s3n://, wasb://...)
are refused with a line naming pyarrow's spelling of the same place.
"""

from __future__ import annotations

import functools
import math
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from churn.record.csvio import (
    HEADER_BYTES,
    Header,
    check_columns,
    parse_header,
    required_columns,
)
from churn.record.errors import BadRequest, ChurnError, InvalidInput

Format = Literal["csv", "parquet"]

SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
# Hadoop's names for places pyarrow reaches under another scheme.
_HADOOP_SCHEMES = {"s3a": "s3", "s3n": "s3", "wasb": "abfs", "wasbs": "abfss"}
_COMPRESSED = (".gz", ".bz2", ".lz4", ".zst", ".br")


@dataclass(frozen=True)
class BookFile:
    uri: str  # as rejected rows name it: file:/path for a local file, else scheme://path
    size: int
    compressed: bool = False


@dataclass(frozen=True)
class BookInput:
    path: str
    format: Format
    files: tuple[BookFile, ...]
    headers: dict[str, Header]  # by uri, CSV only: names and where the data starts
    columns: dict[str, tuple[str, ...]]  # by uri, Parquet only: the required columns' names

    def places(self) -> dict[str, int]:
        """Each file's place in the book, by uri: what its output parts are named after."""
        return {file.uri: place for place, file in enumerate(self.files)}


@functools.cache
def _file_system(root: str) -> pafs.FileSystem:
    """One file system per scheme and host in a process (an S3 client is not cheap)."""
    system, _ = pafs.FileSystem.from_uri(root + "/")
    return system


def locate(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system that holds `uri`, and the path in it."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        path = unquote(parts.path) if scheme == "file" else uri
        return pafs.LocalFileSystem(), str(Path(path).absolute())
    if scheme not in SCHEMES:
        instead = _HADOOP_SCHEMES.get(scheme)
        hint = f" write {instead}://{parts.netloc}{parts.path} for it" if instead else ""
        raise BadRequest(
            f"{uri}: churn batch reads and writes with pyarrow, which opens local paths and "
            f"{', '.join(s + '://' for s in SCHEMES[1:])} URIs;{hint or ' not ' + scheme + '://'}"
            " (README: Score the whole book on Spark)."
        )
    with _errors(uri):
        system = _file_system(f"{scheme}://{parts.netloc}")
        _, path = pafs.FileSystem.from_uri(uri)
    return system, path


def absolute(uri: str) -> str:
    """A local path made absolute, as tasks (whose folder is not the driver's) need it."""
    system, path = locate(uri)
    return path if isinstance(system, pafs.LocalFileSystem) else uri


def name_of(system: pafs.FileSystem, path: str, like: str) -> str:
    """A file's URI as rejected rows name it: Spark's spelling, `file:/a%20b` for a local file."""
    if isinstance(system, pafs.LocalFileSystem):
        return "file:" + quote(path)
    parts = urlsplit(like)
    if parts.scheme in ("hdfs", "viewfs"):
        return f"{parts.scheme}://{parts.netloc}{path}"
    return f"{parts.scheme}://{path}"


def short(uri: str) -> str:
    """A file's URI for a message: its path, as the user may have typed it."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else uri


@contextmanager
def _errors(uri: str) -> Iterator[None]:
    """pyarrow's failures on the driver as one line naming the place."""
    try:
        yield
    except ChurnError:
        raise
    except FileNotFoundError:
        raise BadRequest(f"Path does not exist: {uri}.") from None
    except (OSError, pa.ArrowException) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadRequest(f"{uri}: {detail[:300]}") from None


def discover(path: str) -> BookInput:
    """The input's files and format, each one checked for the columns needed."""
    system, where = locate(path)
    with _errors(path):
        info = system.get_file_info(where)
        if info.type == pafs.FileType.NotFound:
            raise BadRequest(f"Path does not exist: {name_of(system, where, path)}.")
        if info.type == pafs.FileType.File:
            infos = [info]
        else:
            selector = pafs.FileSelector(where, recursive=True)
            infos = sorted(
                (
                    found
                    for found in system.get_file_info(selector)
                    if found.type == pafs.FileType.File and not _hidden(found.path, where)
                ),
                key=lambda found: found.path,
            )
    files = tuple(
        BookFile(
            name_of(system, found.path, path),
            found.size or 0,
            found.path.endswith(_COMPRESSED),
        )
        for found in infos
    )
    if not files:
        raise BadRequest(f"{path} holds no files to score.")
    parquet = [file.uri for file in files if file.uri.endswith(".parquet")]
    if parquet and len(parquet) != len(files):
        other = next(file.uri for file in files if not file.uri.endswith(".parquet"))
        raise BadRequest(
            f"{path} mixes Parquet and other files ({short(parquet[0])}, {short(other)}); "
            "score one format at a time."
        )
    if parquet:
        columns = {file.uri: _parquet_columns(file.uri) for file in files}
        return BookInput(path, "parquet", files, {}, columns)
    headers: dict[str, Header] = {}
    for file in files:
        try:
            header = parse_header(read_head(file.uri, HEADER_BYTES))
        except ChurnError as error:
            raise type(error)(f"{short(file.uri)}: {error.message}", error.problems) from None
        _check(header.names, short(file.uri))
        headers[file.uri] = header
    return BookInput(path, "csv", files, headers, {})


def _hidden(path: str, root: str) -> bool:
    """Hadoop's rule, which Spark's readers follow: a name starting with _ or . is not data."""
    inside = path[len(root) :].strip("/").split("/")
    return any(part.startswith(("_", ".")) for part in inside)


def _parquet_columns(uri: str) -> tuple[str, ...]:
    """The file's names of the required columns (spaces around a name are layout)."""
    with _errors(uri):
        names = parquet_file(uri).schema_arrow.names
    by_name = {name.strip(): name for name in names}
    _check(list(by_name), f"{short(uri)} (Parquet)")
    return tuple(by_name[name] for name in required_columns(True))


def _check(names: list[str], where: str) -> None:
    try:
        check_columns(names, require_id=True)
    except InvalidInput as error:
        message = error.message.replace("The CSV", where, 1)
        raise InvalidInput(message, error.problems) from None


def parquet_file(uri: str) -> pq.ParquetFile:
    system, path = locate(uri)
    return pq.ParquetFile(system.open_input_file(path))


def read_head(uri: str, size: int) -> bytes:
    """The first `size` bytes of a file, decompressed if its name says it is compressed."""
    system, path = locate(uri)
    with _errors(uri), system.open_input_stream(path, compression="detect") as stream:
        return bytes(stream.read(size))


def open_input(uri: str, *, compressed: bool) -> pa.NativeFile:
    """A file to read at offsets, or a compressed one to read from its start."""
    system, path = locate(uri)
    if compressed:
        return system.open_input_stream(path, compression="detect")
    return system.open_input_file(path)


@contextmanager
def local_copy(uri: str, *, compressed: bool) -> Iterator[Path]:
    """The file as a local path: itself, or a copy (decompressed) in a temporary folder."""
    system, path = locate(uri)
    if isinstance(system, pafs.LocalFileSystem) and not compressed:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="churn-spark-file-") as folder:
        copy = Path(folder) / "book.csv"
        with (
            _errors(uri),
            open_input(uri, compressed=compressed) as source,
            copy.open("wb") as target,
        ):
            while chunk := source.read(1 << 24):
                target.write(chunk)
        yield copy


def read_bytes(uri: str) -> bytes:
    system, path = locate(uri)
    with _errors(uri), system.open_input_stream(path) as stream:
        return bytes(stream.read())


def write_bytes(uri: str, content: bytes) -> None:
    """Write a whole file: to a temporary name, then moved, so readers never see half."""
    system, path = locate(uri)
    partial = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    with _errors(uri):
        system.create_dir(_parent(path), recursive=True)
        with system.open_output_stream(partial) as stream:
            stream.write(content)
        system.move(partial, path)


def exists(uri: str) -> bool:
    system, path = locate(uri)
    with _errors(uri):
        return bool(system.get_file_info(path).type != pafs.FileType.NotFound)


def delete(uri: str) -> None:
    """Delete a file or a folder and what it holds; nothing if it is not there."""
    system, path = locate(uri)
    with _errors(uri):
        kind = system.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            system.delete_dir(path)
        elif kind == pafs.FileType.File:
            system.delete_file(path)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path.strip("/") else path


def child(uri: str, *names: str) -> str:
    return "/".join([uri.rstrip("/"), *names])


def move(source: str, target: str) -> None:
    """Move a file, making the target's folder (on an object store: a copy, then a delete)."""
    system, path = locate(source)
    _, destination = locate(target)
    system.create_dir(_parent(destination), recursive=True)
    system.move(path, destination)


def make_dir(uri: str) -> None:
    system, path = locate(uri)
    with _errors(uri):
        system.create_dir(path, recursive=True)


def parquet_parts(folder: str, *, missing_ok: bool = False) -> list[str]:
    """The URIs of the Parquet files directly in a folder, in name order."""
    system, path = locate(folder)
    with _errors(folder):
        found = system.get_file_info(pafs.FileSelector(path, allow_not_found=missing_ok))
    parts = sorted(
        info.path
        for info in found
        if info.type == pafs.FileType.File and info.path.endswith(".parquet")
    )
    return [name_of(system, part, folder) for part in parts]


def parquet_rows(folder: str) -> int:
    """The rows the Parquet files of a folder hold, by their footers."""
    total = 0
    for part in parquet_parts(folder):
        system, path = locate(part)
        with _errors(part):
            total += pq.read_metadata(path, filesystem=system).num_rows
    return total


def task_bytes(total: int, largest: int, open_cost: int, parallelism: int) -> int:
    """Bytes per task. As Spark's file sources size their splits (at most `largest`, else
    the total over the cores, at least what opening a file costs), then evened out so
    that the tasks fill whole rounds of the cores: 7 splits on 2 cores would leave one
    core idle for the last round."""
    split = min(largest, max(open_cost, math.ceil(total / parallelism)))
    tasks = max(1, math.ceil(total / max(split, 1)))
    tasks = math.ceil(tasks / parallelism) * parallelism
    return max(1, math.ceil(total / tasks))
