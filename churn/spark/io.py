"""What a batch job reads and writes, through Hadoop's file systems.

Paths go through Spark's Hadoop file system layer, so INPUT and DIR may be local
paths or any URI the cluster reads (hdfs://, s3a:// with its connector): the driver
reads each CSV's header and writes summary.json the way the executors read and write
the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from churn.record.csvio import HEADER_BYTES, Header, check_columns, parse_header
from churn.record.errors import BadRequest, ChurnError, InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Format = Literal["csv", "parquet"]


@dataclass(frozen=True)
class BookInput:
    path: str
    format: Format
    files: tuple[str, ...]
    headers: dict[str, Header]  # by file_key, CSV only: names and lines up to the header


def file_key(uri: str) -> str:
    """One spelling per file: Spark lists file:///a%20b where it reads file:/a b."""
    parts = urlsplit(uri)
    return f"{parts.scheme or 'file'}://{parts.netloc}{unquote(parts.path)}"


def discover(spark: SparkSession, path: str) -> BookInput:
    """The input's files and format, each CSV's header checked for the columns needed."""
    files = tuple(spark.read.format("text").load(path).inputFiles())
    if not files:
        raise BadRequest(f"{path} holds no files to score.")
    parquet = [name for name in files if name.endswith(".parquet")]
    if parquet and len(parquet) != len(files):
        other = next(name for name in files if not name.endswith(".parquet"))
        raise BadRequest(
            f"{path} mixes Parquet and other files ({_short(parquet[0])}, {_short(other)}); "
            "score one format at a time."
        )
    if parquet:
        names = spark.read.parquet(path).columns
        _check(names, f"{path} (Parquet)")
        return BookInput(path, "parquet", files, {})
    headers: dict[str, Header] = {}
    for name in files:
        try:
            header = parse_header(read_head(spark, name, HEADER_BYTES))
        except ChurnError as error:
            raise type(error)(f"{_short(name)}: {error.message}", error.problems) from None
        _check(header.names, _short(name))
        headers[file_key(name)] = header
    return BookInput(path, "csv", files, headers)


def _check(names: list[str], where: str) -> None:
    try:
        check_columns(names, require_id=True)
    except InvalidInput as error:
        message = error.message.replace("The CSV", where, 1)
        raise InvalidInput(message, error.problems) from None


def _short(uri: str) -> str:
    return unquote(urlsplit(uri).path) or uri


def _file_system(spark: SparkSession, uri: str) -> tuple[Any, Any, Any]:
    """Py4J handles on the JVM, the Hadoop path and its file system."""
    context: Any = spark.sparkContext
    jvm = context._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    system = path.getFileSystem(context._jsc.hadoopConfiguration())
    # No .crc beside a local summary.json or call list, which people open and edit.
    system.setWriteChecksum(False)
    system.setVerifyChecksum(False)
    return jvm, path, system


def read_head(spark: SparkSession, uri: str, size: int) -> bytes:
    """The first `size` bytes of a file, decompressed if its name says it is compressed."""
    jvm, path, system = _file_system(spark, uri)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(system.getConf()).getCodec(
        path
    )
    stream = system.open(path)
    try:
        if codec is not None:
            stream = codec.createInputStream(stream)
        return bytes(stream.readNBytes(size))
    finally:
        stream.close()


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    _, path, system = _file_system(spark, uri)
    if not system.exists(path):
        raise BadRequest(f"{uri} does not exist.")
    stream = system.open(path)
    try:
        return bytes(stream.readAllBytes())
    finally:
        stream.close()


def write_bytes(spark: SparkSession, uri: str, content: bytes) -> None:
    """Write a whole file: to a temporary name, then renamed, so readers never see half."""
    jvm, path, system = _file_system(spark, uri)
    partial = jvm.org.apache.hadoop.fs.Path(uri + ".partial")
    stream = system.create(partial, True)
    try:
        stream.write(bytearray(content))
    finally:
        stream.close()
    system.delete(path, False)
    if not system.rename(partial, path):
        raise ChurnError(f"Could not write {uri}.")


def exists(spark: SparkSession, uri: str) -> bool:
    _, path, system = _file_system(spark, uri)
    return bool(system.exists(path))


def delete(spark: SparkSession, uri: str) -> None:
    _, path, system = _file_system(spark, uri)
    system.delete(path, True)
