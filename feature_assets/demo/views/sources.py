"""Raw sources shared by several views of the demo domain."""

from feature_assets import ParquetSource, StreamSource

trips = ParquetSource(
    name="trips",
    path="raw/trips/*.parquet",
    timestamp_field="requested_at",
    description="One row per trip request, written by the dispatch service",
)

trip_stream = StreamSource(
    name="trip_stream",
    batch_source=trips,
    partitions=4,
    description="Trip requests as the dispatch service emits them (Redis Streams), with the trips table as history",
)
