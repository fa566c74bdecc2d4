"""A streaming view used by the stream tests: trips and fares per driver over 10- and 30-minute windows."""

from feature_assets import Aggregation, Entity, FeatureRepository, FeatureView, ParquetSource, StreamSource

driver = Entity("driver", ["driver_id"])

trip_events = StreamSource(
    "trip_events",
    batch_source=ParquetSource("trip_event_history", "stream_test/trips/*.parquet", timestamp_field="event_timestamp"),
    partitions=3,
)

driver_trips_live = FeatureView(
    "driver_trips_live",
    entities=[driver],
    source=trip_events,
    aggregations=[
        Aggregation("fare", "sum", "10m"),
        Aggregation("fare", "count", "10m"),
        Aggregation("fare", "mean", "30m"),
        Aggregation("fare", "min", "30m"),
        Aggregation("fare", "max", "10m"),
        Aggregation("fare", "last", "30m"),
        Aggregation("trip", "count", "30m", name="trips_30m"),
    ],
    step="5m",
    allowed_lateness="10m",
    start_date="2026-01-01",
)

repository = FeatureRepository(views=[driver_trips_live])
