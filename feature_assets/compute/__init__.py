"""Computing a view's rows with Polars: source normalization, windowed aggregations, one partition, latest rows."""

from feature_assets.compute.latest import latest_per_entity
from feature_assets.compute.partition_compute import PartitionRows, compute_partition
from feature_assets.compute.source_frames import normalize_source
from feature_assets.compute.windowed_aggregation import aggregate_windows

__all__ = ["PartitionRows", "aggregate_windows", "compute_partition", "latest_per_entity", "normalize_source"]
