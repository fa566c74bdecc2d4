"""Streaming views in the asset graph: their online tiles as assets observed by the workers, and the stream checks.

The stream source (an external asset) feeds two assets: the view's daily partitions (materialized by Dagster from the
batch source and the pushed events) and `online/<view>`, the tiles the stream workers keep fresh. Workers report
observations of `online/<view>` (watermark, lag, counts); the checks below read the same state from Redis.
"""

import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetObservation,
    AssetSpec,
    DagsterInstance,
    MetadataValue,
    multi_asset_check,
)

from feature_assets.compute.served_windows import served_values
from feature_assets.compute.stream_events import stream_events
from feature_assets.language.asset_keys import online_asset_key, source_asset_key
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore
from resources.online_encoding import EPOCH, decode_entity_key
from resources.online_store import RedisOnlineStore
from resources.stream_keys import tile_key_affixes
from resources.stream_progress import StreamProgress, stream_progress

STREAM_GROUP = "online"
LAG_CHECK = "consumer_lag"
FRESHNESS_CHECK = "event_freshness"
DEAD_LETTER_CHECK = "dead_letters_empty"
PARITY_CHECK = "stream_batch_parity"
MAX_LAG_SECONDS = 60.0
PARITY_SAMPLE = 100
_ONE_MICROSECOND = timedelta(microseconds=1)


def build_stream_online_spec(view: FeatureView) -> AssetSpec:
    """Return the external asset of a streaming view's online tiles, downstream of its stream source."""
    return AssetSpec(
        key=online_asset_key(view),
        deps=[source_asset_key(view.source)],
        description=(
            f"Tiles of {view.name!r} in Redis, kept fresh by stream workers (python -m "
            "feature_assets.streaming.worker); observed by the workers"
        ),
        group_name=STREAM_GROUP,
        kinds={"redis"},
        owners=[view.owner] if view.owner else None,
        metadata={"partitions": getattr(view.source, "partitions", 1), "step": str(view.step)},
    )


def progress_metadata(progress: StreamProgress) -> dict[str, object]:
    """Return a stream's progress as asset metadata."""
    metadata: dict[str, object] = {
        "applied": progress.applied,
        "late": progress.late,
        "expired": progress.expired,
        "invalid_deliveries": progress.invalid,
        "dead_lettered": progress.dead_letters,
        "archived_offline": progress.archived,
        "pending": progress.pending,
        "undelivered": progress.undelivered,
        "lag_seconds": MetadataValue.float(progress.lag_seconds),
    }
    if progress.watermark is not None:
        metadata["watermark"] = MetadataValue.timestamp(progress.watermark)
    return metadata


def report_observations(instance: DagsterInstance, store: RedisOnlineStore, views: Sequence[FeatureView]) -> None:
    """Report one observation of each streaming view's online tiles to the Dagster instance."""
    now = time.time()
    for view in views:
        progress = stream_progress(store.client, store.key_prefix, view, now)
        instance.report_runless_asset_event(
            AssetObservation(asset_key=online_asset_key(view), metadata=progress_metadata(progress))
        )


def parity_mismatches(
    view: FeatureView, online_store: RedisOnlineStore, offline_store: OfflineStore, now_us: int
) -> tuple[int, list[dict[str, object]]]:
    """Compare the tiles of up to PARITY_SAMPLE entities at the last step boundary with the event log's values.

    Returns how many entities were compared and the mismatching (entity, feature, online, from the log) rows.
    """
    step_us = view.step // _ONE_MICROSECOND
    boundary = now_us - now_us % step_us
    before, after = tile_key_affixes(online_store.key_prefix, view)
    pattern = f"{before}*{after}*".replace("{", "\\{").replace("}", "\\}")
    entities = []
    for key in online_store.client.scan_iter(match=pattern, count=1000):
        entities.append(decode_entity_key(view, key.decode().split(after, 1)[1]))
        if len(entities) >= PARITY_SAMPLE:
            break
    if not entities:
        return 0, []
    at = EPOCH + timedelta(microseconds=boundary)
    features = [f"{view.name}:{name}" for name in view.feature_names]
    online = online_store.get_online_features(features, entities, now=at).to_dict()
    requests = pl.DataFrame(entities).with_row_index("_row").with_columns(pl.lit(boundary).alias("_t"))
    events = stream_events(view, offline_store, at - view.lookback - view.step, at + view.step)
    expected = served_values(view, events, requests, "_row", "_t", arrived_by_us=now_us)
    mismatches = []
    for index, entity in enumerate(entities):
        for name in view.feature_names:
            served, logged = online[name][index], expected[name][index]
            if served != logged:
                mismatches.append({**entity, "feature": name, "online": served, "event_log": logged})
    return len(entities), mismatches


def freshness_result(
    view: FeatureView, progress: StreamProgress, now: float, metadata: dict[str, object]
) -> AssetCheckResult:
    """Return the freshness check's result: the newest applied event's age against the view's quality policy."""
    limit = view.quality.max_stream_age_minutes * 60
    age = None if progress.watermark is None else now - progress.watermark
    return AssetCheckResult(
        asset_key=online_asset_key(view),
        check_name=FRESHNESS_CHECK,
        passed=age is not None and age <= limit,
        severity=AssetCheckSeverity.WARN,
        metadata={**metadata, "newest_event_age_seconds": MetadataValue.float(-1.0 if age is None else age)},
        description=(
            "no event has been applied yet: start a stream worker and check that producers write to the streams"
            if age is None
            else f"newest applied event is {age:.1f}s old (at most {limit:g}s); "
            + ("fresh" if age <= limit else "check the producers and the stream workers")
        ),
    )


def build_stream_checks(views: Sequence[FeatureView]):  # noqa: ANN201 (a multi_asset_check definition)
    """Return the checks of streaming views' online tiles: lag, freshness, dead letters, parity with the event log."""
    specs = []
    for view in views:
        key = online_asset_key(view)
        specs += [
            AssetCheckSpec(
                LAG_CHECK, asset=key, description=f"oldest unapplied event at most {MAX_LAG_SECONDS:.0f}s old"
            ),
            AssetCheckSpec(
                FRESHNESS_CHECK,
                asset=key,
                description=(
                    f"newest applied event at most {view.quality.max_stream_age_minutes:g} minutes old "
                    "(QualityPolicy.max_stream_age_minutes)"
                ),
            ),
            AssetCheckSpec(DEAD_LETTER_CHECK, asset=key, description="no event moved to the dead-letter streams"),
            AssetCheckSpec(
                PARITY_CHECK,
                asset=key,
                description=f"tiles of {PARITY_SAMPLE} entities at the last step equal the event log's values",
            ),
        ]

    @multi_asset_check(specs=specs, name="stream_checks", can_subset=True)
    def stream_checks(
        context: AssetCheckExecutionContext, online_store: RedisOnlineStore, offline_store: OfflineStore
    ) -> Iterator[AssetCheckResult]:
        now = time.time()
        selected = context.selected_asset_check_keys
        for view in views:
            key = online_asset_key(view)
            progress = stream_progress(online_store.client, online_store.key_prefix, view, now)
            metadata = progress_metadata(progress)
            if any(c.asset_key == key and c.name == LAG_CHECK for c in selected):
                yield AssetCheckResult(
                    asset_key=key,
                    check_name=LAG_CHECK,
                    passed=progress.lag_seconds <= MAX_LAG_SECONDS,
                    severity=AssetCheckSeverity.WARN,
                    metadata=metadata,
                    description=f"oldest unapplied event is {progress.lag_seconds:.1f}s old",
                )
            if any(c.asset_key == key and c.name == FRESHNESS_CHECK for c in selected):
                yield freshness_result(view, progress, now, metadata)
            if any(c.asset_key == key and c.name == DEAD_LETTER_CHECK for c in selected):
                yield AssetCheckResult(
                    asset_key=key,
                    check_name=DEAD_LETTER_CHECK,
                    passed=progress.dead_letters == 0,
                    severity=AssetCheckSeverity.ERROR,
                    metadata=metadata,
                    description=(
                        f"{progress.dead_letters} events in the dead-letter streams; read them with XRANGE "
                        f"on {progress.dead_letter_keys[0]} (one per partition), fix the producer and re-add them"
                        if progress.dead_letters
                        else "the dead-letter streams are empty"
                    ),
                )
            if any(c.asset_key == key and c.name == PARITY_CHECK for c in selected):
                compared, mismatches = parity_mismatches(view, online_store, offline_store, int(now * 1e6))
                yield AssetCheckResult(
                    asset_key=key,
                    check_name=PARITY_CHECK,
                    passed=not mismatches,
                    severity=AssetCheckSeverity.WARN,
                    metadata={
                        "entities_compared": compared,
                        "mismatches": len(mismatches),
                        "sample": MetadataValue.json(mismatches[:20]),
                    },
                    description=(
                        f"{len(mismatches)} values of {compared} entities differ from the event log at the last step: "
                        "events applied online but not in the event log yet (producers' own XADDs before the archiver, "
                        "feature-store stream archive, copied them; to='online' pushes), or not applied yet (lag)"
                        if mismatches
                        else f"{compared} entities equal the event log's values at the last step"
                    ),
                )

    return stream_checks
