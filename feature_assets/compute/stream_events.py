"""The event log of a streaming view: its batch source's rows and the events pushed to it, in one frame."""

from datetime import datetime, timedelta

import polars as pl

from feature_assets.compute.source_frames import normalize_source
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore


def stream_events(view: FeatureView, offline_store: OfflineStore, start: datetime, end: datetime) -> pl.LazyFrame:
    """Return the events with `start <= event time < end`: join keys, event and created (arrival) times, columns.

    Batch source rows arrive at their created time (their event time when the source has none); pushed events at
    the arrival time stamped on them.
    """
    columns = [*view.join_keys, "event_timestamp", "created_timestamp", *view.stream_columns]
    frames = [normalize_source(view, offline_store.scan_source(view.source, start, end)).select(columns)]
    day = start.date()
    while day < end.date() + timedelta(days=1):
        pushed = offline_store.scan_pushed(view, day)
        if pushed is not None:
            frames.append(pushed.select(columns))
        day += timedelta(days=1)
    events = pl.concat(frames, how="vertical_relaxed")
    return events.filter((pl.col("event_timestamp") >= start) & (pl.col("event_timestamp") < end))
