"""The daily UTC partitions of feature views and their online tables."""

from datetime import date
from functools import cache

from dagster import DailyPartitionsDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG


@cache
def daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Return the daily UTC partitions starting on `start_date` (shared by every view with that start)."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Return the run tags that make one run cover the partitions from `first` to `last`."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
