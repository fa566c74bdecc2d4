"""The daily UTC partitions of feature views and their online tables."""

from datetime import date
from functools import cache

from dagster import DailyPartitionsDefinition


@cache
def daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Return the daily UTC partitions starting on `start_date` (shared by every view with that start)."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")
