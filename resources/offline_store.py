"""The offline store: Parquet partitions of every feature view on a local folder or S3 (through s3fs)."""

import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import fsspec
import polars as pl
from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

from feature_assets.language.byte_sizes import parse_byte_size
from feature_assets.language.errors import SourceSchemaError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.sources import ParquetSource

PARTITION_FILE = "data.parquet"
QUARANTINE_FOLDER = "quarantine"
PUSHED_FOLDER = "pushed"
MAX_SINGLE_PUT_BYTES = 5 * 1024**3
UNIQUE_EVENT_TIMES = "feature_store.unique_event_times"
"""Parquet key-value metadata of a partition: "true" when no two of its rows share join keys and event time."""


@dataclass(frozen=True)
class PartitionSize:
    """One partition's file, row count and uncompressed bytes per column, as its Parquet footer tells."""

    day: date
    path: str
    rows: int
    column_bytes: dict[str, int]
    unique_event_times: bool


class OfflineStore(ConfigurableResource):
    """Parquet partitions laid out as `<root>/<view>/v<version>/date=YYYY-MM-DD/data.parquet`.

    A partition that failed its blocking check is kept aside in `<root>/<view>/v<version>/quarantine/date=.../`,
    which no reader of partitions looks at; writing the partition again after it passes removes it from there.
    Rows pushed to a view are its event log: one Parquet file per push and day in `<root>/<view>/v<version>/pushed/
    date=.../`, which the day's partition includes when it is next computed.
    """

    root: str = Field(default="data", description="Local folder or s3://bucket/prefix holding all Parquet.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint, e.g. http://127.0.0.1:8333.")
    aws_access_key_id: str | None = Field(default=None, description="S3 access key id.")
    aws_secret_access_key: str | None = Field(default=None, description="S3 secret access key.")
    memory_budget: str = Field(
        default="2GiB",
        description="Memory one point-in-time join or partition computation plans its work to fit, e.g. '2GiB'.",
    )

    _fs: fsspec.AbstractFileSystem | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, *, as_env_vars: bool = False) -> "OfflineStore":
        """Build the store from OFFLINE_ROOT, S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
        FEATURE_STORE_MEMORY_BUDGET.

        With `as_env_vars` the settings are Dagster `EnvVar`s, resolved when a run starts (for Definitions);
        otherwise they are read now (for plain Python).
        """
        settings: dict[str, object] = {}
        for field_name, variable in (
            ("root", "OFFLINE_ROOT"),
            ("s3_endpoint_url", "S3_ENDPOINT_URL"),
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("memory_budget", "FEATURE_STORE_MEMORY_BUDGET"),
        ):
            if os.environ.get(variable):
                settings[field_name] = EnvVar(variable) if as_env_vars else os.environ[variable]
        return cls(**settings)

    @property
    def is_s3(self) -> bool:
        """Return whether the store lives on S3."""
        return self.root.startswith("s3://")

    @property
    def memory_budget_bytes(self) -> int:
        """Return the memory budget in bytes."""
        return parse_byte_size(self.memory_budget, "OfflineStore.memory_budget (FEATURE_STORE_MEMORY_BUDGET)")

    @property
    def filesystem(self) -> fsspec.AbstractFileSystem:
        """Return the fsspec filesystem behind the root (local, or s3fs with the configured endpoint)."""
        if self._fs is None:
            if self.is_s3:
                import s3fs

                client_kwargs = {"endpoint_url": self.s3_endpoint_url} if self.s3_endpoint_url else {}
                self._fs = s3fs.S3FileSystem(
                    key=self.aws_access_key_id,
                    secret=self.aws_secret_access_key,
                    client_kwargs=client_kwargs,
                    use_listings_cache=False,
                )
            else:
                self._fs = fsspec.filesystem("file")
        return self._fs

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Return the options Polars needs to read this store's S3 paths (None for local paths)."""
        if not self.is_s3:
            return None
        options = {"aws_region": "us-east-1"}
        if self.s3_endpoint_url:
            options["aws_endpoint_url"] = self.s3_endpoint_url
            options["aws_allow_http"] = str(self.s3_endpoint_url.startswith("http://")).lower()
        if self.aws_access_key_id:
            options["aws_access_key_id"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            options["aws_secret_access_key"] = self.aws_secret_access_key
        return options

    def resolve(self, path: str) -> str:
        """Return `path` made absolute: URLs and absolute paths as given, others under the root."""
        if "://" in path or os.path.isabs(path):
            return path
        root = self.root if self.is_s3 else os.path.abspath(self.root)
        return posixpath.join(root, path)

    def view_root(self, view: FeatureView) -> str:
        """Return the folder holding every partition of one version of a view."""
        return self.resolve(f"{view.name}/v{view.version}")

    def partition_path(self, view: FeatureView, day: date) -> str:
        """Return the Parquet file of one daily partition."""
        return posixpath.join(self.view_root(view), f"date={day.isoformat()}", PARTITION_FILE)

    def quarantine_path(self, view: FeatureView, day: date) -> str:
        """Return where a partition that failed its blocking check is kept, beside the view's partitions."""
        return posixpath.join(self.view_root(view), QUARANTINE_FOLDER, f"date={day.isoformat()}", PARTITION_FILE)

    def write_partition(self, view: FeatureView, day: date, frame: pl.DataFrame) -> str:
        """Replace one partition with `frame` atomically and drop its quarantined copy, if any (a promotion).

        The file records whether its rows' (join keys, event time) are unique, which lets joins order rows by event
        time alone.
        """
        identities = frame.select(pl.struct(*view.join_keys, "event_timestamp").n_unique()).item() if len(frame) else 0
        unique = "true" if identities == frame.height else "false"
        path = self.write_file(self.partition_path(view, day), frame, {UNIQUE_EVENT_TIMES: unique})
        quarantined = self.quarantine_path(view, day)
        if self.filesystem.exists(quarantined):
            self.filesystem.rm(posixpath.dirname(quarantined), recursive=True)
        return path

    def quarantine_partition(self, view: FeatureView, day: date, frame: pl.DataFrame) -> str:
        """Write rows that failed the blocking check aside; the partition readers see stays as it was."""
        return self.write_file(self.quarantine_path(view, day), frame)

    def append_pushed(self, view: FeatureView, frame: pl.DataFrame, batch: str | None = None) -> list[str]:
        """Append pushed offline rows to the view's event log, one atomically written file per UTC day.

        The files are named `<batch>.parquet` (default: a random name): appending the same batch again replaces them.
        """
        batch = batch or uuid.uuid4().hex
        paths = []
        for (day,), rows in frame.group_by(pl.col("event_timestamp").dt.date(), maintain_order=True):
            folder = posixpath.join(self.view_root(view), PUSHED_FOLDER, f"date={day.isoformat()}")
            paths.append(self.write_file(posixpath.join(folder, f"{batch}.parquet"), rows))
        return paths

    def scan_pushed(self, view: FeatureView, day: date) -> pl.LazyFrame | None:
        """Return the rows pushed to the view for one UTC day, or None when nothing was pushed."""
        pattern = posixpath.join(self.view_root(view), PUSHED_FOLDER, f"date={day.isoformat()}", "*.parquet")
        files = sorted(self.filesystem.glob(pattern))
        if not files:
            return None
        if self.is_s3:
            files = [f"s3://{path}" for path in files]
        return pl.scan_parquet(files, storage_options=self.storage_options)

    def delete_partition(self, view: FeatureView, day: date) -> None:
        """Remove one partition if it exists."""
        folder = posixpath.dirname(self.partition_path(view, day))
        if self.filesystem.exists(folder):
            self.filesystem.rm(folder, recursive=True)

    def list_partitions(self, view: FeatureView) -> list[date]:
        """Return the days that have a written partition, in order."""
        pattern = posixpath.join(self.view_root(view), "date=*", PARTITION_FILE)
        days = [date.fromisoformat(posixpath.basename(posixpath.dirname(p))[5:]) for p in self.filesystem.glob(pattern)]
        return sorted(days)

    def partition_files(self, view: FeatureView, start: date | None = None, end: date | None = None) -> list[str]:
        """Return the full paths of existing partitions with `start <= day <= end` (bounds optional)."""
        days = [d for d in self.list_partitions(view) if (start is None or d >= start) and (end is None or d <= end)]
        return [self.partition_path(view, d) for d in days]

    def partition_sizes(
        self, view: FeatureView, start: date | None = None, end: date | None = None
    ) -> list[PartitionSize]:
        """Return the row count and per-column uncompressed bytes of each partition in range, from Parquet footers."""
        files = self.partition_files(view, start, end)
        if not files:
            return []
        with self.duckdb_connection() as connection:
            footers = connection.sql(
                "SELECT file_name, path_in_schema, sum(row_group_num_rows)::BIGINT, "
                "sum(total_uncompressed_size)::BIGINT FROM parquet_metadata($files) GROUP BY ALL",
                params={"files": files},
            ).fetchall()
            unique = connection.sql(
                "SELECT file_name FROM parquet_kv_metadata($files) "
                "WHERE key::VARCHAR = $key AND value::VARCHAR = 'true'",
                params={"files": files, "key": UNIQUE_EVENT_TIMES},
            ).fetchall()
        by_file: dict[str, tuple[int, dict[str, int]]] = {}
        for file_name, column, rows, size in footers:
            by_file.setdefault(file_name.removeprefix("s3://"), (rows, {}))[1][column] = size
        unique_files = {file_name.removeprefix("s3://") for (file_name,) in unique}
        sizes = []
        for path in files:
            rows, column_bytes = by_file.get(path.removeprefix("s3://"), (0, {}))
            day = date.fromisoformat(posixpath.basename(posixpath.dirname(path))[5:])
            sizes.append(PartitionSize(day, path, rows, column_bytes, path.removeprefix("s3://") in unique_files))
        return sizes

    def read_partition(self, view: FeatureView, day: date) -> pl.DataFrame:
        """Return the rows of one partition (an empty frame with the view's schema if it was never written)."""
        path = self.partition_path(view, day)
        if not self.filesystem.exists(path):
            return pl.DataFrame(schema=view.output_schema)
        return pl.read_parquet(path, storage_options=self.storage_options)

    def scan_partitions(self, view: FeatureView, start: date | None = None, end: date | None = None) -> pl.LazyFrame:
        """Return a lazy frame over the partitions with `start <= day <= end`."""
        files = self.partition_files(view, start, end)
        if not files:
            return pl.LazyFrame(schema=view.output_schema)
        return pl.scan_parquet(files, storage_options=self.storage_options)

    def scan_source(self, source: ParquetSource, start: datetime, end: datetime) -> pl.LazyFrame:
        """Return the source rows with `start <= timestamp < end`, filtered where Parquet statistics allow."""
        frame = pl.scan_parquet(self.resolve(source.path), storage_options=self.storage_options)
        column = source.timestamp_field
        dtype = frame.collect_schema().get(column)
        if not isinstance(dtype, pl.Datetime):
            raise SourceSchemaError(
                f"source {source.name!r} ({source.path}): timestamp_field {column!r} must be a datetime column, "
                f"found {dtype}; write it as a Parquet timestamp (naive values are read as UTC)"
            )
        low, high = (_literal_for(dtype, moment) for moment in (start, end))
        return frame.filter((pl.col(column) >= low) & (pl.col(column) < high))

    def write_file(self, path: str, frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> str:
        """Write `frame` as one Parquet file at `path` (relative paths go under the root), replacing it atomically.

        `metadata` goes into the file's key-value metadata.

        Locally the file is written aside and renamed over the target; on S3 it is one PUT, which is atomic.
        """
        full = self.resolve(path)
        if self.is_s3:
            buffer = io.BytesIO()
            frame.write_parquet(buffer, statistics=True, metadata=metadata)
            self.filesystem.pipe_file(full, buffer.getvalue(), chunksize=MAX_SINGLE_PUT_BYTES)
            return full
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        staging = os.path.join(folder, f".{os.path.basename(full)}.{uuid.uuid4().hex}.tmp")
        try:
            frame.write_parquet(staging, statistics=True, metadata=metadata)
            os.replace(staging, full)
        finally:
            if os.path.exists(staging):
                os.remove(staging)
        return full

    @contextmanager
    def duckdb_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield an in-memory DuckDB connection that can read this store's paths (S3 through s3fs)."""
        connection = duckdb.connect()
        try:
            if self.is_s3:
                connection.register_filesystem(self.filesystem)
            yield connection
        finally:
            connection.close()


def _literal_for(dtype: pl.Datetime, moment: datetime) -> pl.Expr:
    """Return `moment` as a literal comparable with a column of `dtype` (naive moments and columns are UTC)."""
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    literal = pl.lit(naive_utc, dtype=pl.Datetime(dtype.time_unit))
    if dtype.time_zone is None:
        return literal
    return literal.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)


def day_bounds(day: date, lookback: timedelta = timedelta(0)) -> tuple[datetime, datetime]:
    """Return the UTC datetimes `[day - lookback, day + 1)` a partition reads."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start - lookback, start + timedelta(days=1)
