"""The offline store on a real S3-protocol server behaves as it does on local disk."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_assets import Entity, FeatureView, Field, ParquetSource
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
VIEW = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=ParquetSource("driver_events", "raw/driver_events/*.parquet", "ts"),
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int32)],
    ttl="1d",
)
DAY = date(2024, 5, 1)


def _partition(day: date, rows: int = 5) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    times = [start + timedelta(hours=i) for i in range(rows)]
    return pl.DataFrame(
        {
            "driver_id": list(range(rows)),
            "event_timestamp": times,
            "created_timestamp": times,
            "conv_rate": [i / 10 for i in range(rows)],
            "trips": list(range(rows)),
        },
        schema=VIEW.output_schema,
    )


def test_s3_server_rejects_a_wrong_secret(s3_endpoint):
    if s3_endpoint.server != "seaweedfs":
        pytest.skip("moto accepts any credentials")
    store = OfflineStore(
        root=f"s3://{s3_endpoint.bucket}/denied",
        s3_endpoint_url=s3_endpoint.endpoint_url,
        aws_access_key_id=s3_endpoint.key,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(PermissionError):
        store.write_partition(VIEW, DAY, _partition(DAY))


def test_written_partition_reads_back_with_the_view_schema(s3_offline_store):
    frame = _partition(DAY)
    path = s3_offline_store.write_partition(VIEW, DAY, frame)
    assert path == f"{s3_offline_store.root}/driver_stats/v1/date=2024-05-01/data.parquet"
    assert_frame_equal(s3_offline_store.read_partition(VIEW, DAY), frame)


def test_rewriting_a_partition_replaces_its_rows(s3_offline_store):
    s3_offline_store.write_partition(VIEW, DAY, _partition(DAY, rows=5))
    s3_offline_store.write_partition(VIEW, DAY, _partition(DAY, rows=2))
    assert s3_offline_store.read_partition(VIEW, DAY).height == 2


def test_missing_partition_reads_as_empty_frame_with_the_view_schema(s3_offline_store):
    frame = s3_offline_store.read_partition(VIEW, DAY)
    assert frame.is_empty()
    assert frame.schema == pl.Schema(VIEW.output_schema)


def test_partition_files_lists_s3_urls_within_the_date_range(s3_offline_store):
    days = [DAY + timedelta(days=i) for i in range(4)]
    for day in days:
        s3_offline_store.write_partition(VIEW, day, _partition(day))
    assert s3_offline_store.list_partitions(VIEW) == days
    files = s3_offline_store.partition_files(VIEW, days[1], days[2])
    assert files == [s3_offline_store.partition_path(VIEW, day) for day in days[1:3]]
    assert all(f.startswith("s3://") for f in files)
    assert s3_offline_store.scan_partitions(VIEW, days[1], days[2]).collect().height == 10


def test_deleted_partition_is_no_longer_listed(s3_offline_store):
    s3_offline_store.write_partition(VIEW, DAY, _partition(DAY))
    s3_offline_store.delete_partition(VIEW, DAY)
    assert s3_offline_store.list_partitions(VIEW) == []


def test_scan_source_reads_relative_paths_under_the_root_and_filters_by_time(s3_offline_store):
    times = [datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=12 * i) for i in range(6)]
    raw = pl.DataFrame({"driver_id": range(6), "ts": times})
    s3_offline_store.write_file("raw/driver_events/part-0.parquet", raw)
    rows = s3_offline_store.scan_source(VIEW.source, times[1], times[4]).collect()
    assert rows["driver_id"].to_list() == [1, 2, 3]


def test_duckdb_connection_reads_partitions_through_s3fs(s3_offline_store):
    for day in (DAY, DAY + timedelta(days=1)):
        s3_offline_store.write_partition(VIEW, day, _partition(day))
    files = s3_offline_store.partition_files(VIEW)
    with s3_offline_store.duckdb_connection() as connection:
        total, trips = connection.execute(
            "SELECT count(*), sum(trips) FROM read_parquet($files)", {"files": files}
        ).fetchone()
    assert (total, trips) == (10, 20)
