"""The non-blocking checks of a view partition: null rate, row count and drift against trailing partitions."""

import statistics as stats
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl
from dagster import AssetRecordsFilter, DagsterInstance, MetadataValue

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.feature_view import FeatureView
from feature_assets.quality.check_outcome import CheckOutcome
from feature_assets.quality.drift import CdfSummary, numeric_drift, population_stability_index
from feature_assets.quality.gate import QUARANTINED
from feature_assets.quality.statistics import is_categorical

NULL_RATE_CHECK = "null_rate"
ROW_COUNT_CHECK = "row_count"
DRIFT_CHECK = "drift"
WARNING_CHECKS = {
    NULL_RATE_CHECK: "Share of nulls per feature stays under its threshold",
    ROW_COUNT_CHECK: "Row count within the allowed change from the trailing partitions' median",
    DRIFT_CHECK: "Feature distributions close to the trailing partitions' (PSI and KS per feature)",
}


@dataclass(frozen=True)
class Baseline:
    """What the trailing partitions' materialization metadata says: row counts, deciles and category shares."""

    partitions: tuple[str, ...]
    row_counts: tuple[int, ...]
    summaries: dict[str, tuple[CdfSummary, ...]]
    shares: dict[str, dict[str, float]]


def load_baseline(instance: DagsterInstance, view: FeatureView, partition_key: str) -> Baseline:
    """Read the metadata of the partitions before `partition_key` (up to the policy's N) that readers see.

    Per partition that is its latest materialization that was not quarantined.
    """
    day = date.fromisoformat(partition_key)
    keys = [(day - timedelta(days=i)).isoformat() for i in range(1, view.quality.baseline_partitions + 1)]
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=view_asset_key(view), asset_partitions=keys), limit=len(keys) * 10
    ).records
    latest: dict[str, Mapping[str, object]] = {}
    for record in records:
        materialization = record.asset_materialization
        if record.partition_key in latest or materialization is None:
            continue
        quarantined = materialization.metadata.get(QUARANTINED)
        if quarantined is None or not quarantined.value:
            latest[record.partition_key] = materialization.metadata
    partitions = tuple(sorted(latest))
    row_counts = tuple(
        int(latest[p]["dagster/row_count"].value) for p in partitions if "dagster/row_count" in latest[p]
    )
    summaries: dict[str, tuple[CdfSummary, ...]] = {}
    shares: dict[str, dict[str, float]] = {}
    for f in view.schema:
        stored = [latest[p][f"{f.name}/cdf"].value for p in partitions if f"{f.name}/cdf" in latest[p]]
        if stored:
            summaries[f.name] = tuple(CdfSummary.from_json(value) for value in stored)
        share_maps = [latest[p][f"{f.name}/shares"].value for p in partitions if f"{f.name}/shares" in latest[p]]
        share_maps = [m for m in share_maps if m]
        if share_maps:
            categories = set().union(*share_maps)
            shares[f.name] = {c: stats.fmean(m.get(c, 0.0) for m in share_maps) for c in categories}
    return Baseline(partitions, row_counts, summaries, shares)


def null_rate_outcome(view: FeatureView, statistics: Mapping[str, Mapping[str, float | None]]) -> CheckOutcome:
    """Warn when a feature's null % exceeds its field's `max_null_pct` (or the view policy's)."""
    over = {}
    for f in view.schema:
        limit = f.max_null_pct if f.max_null_pct is not None else view.quality.max_null_pct
        null_pct = statistics.get(f.name, {}).get("null_pct") or 0.0
        if null_pct > limit:
            over[f.name] = {"null_pct": null_pct, "max_null_pct": limit}
    metadata: dict[str, object] = {f"{name}/null_pct": s.get("null_pct") or 0.0 for name, s in statistics.items()}
    if over:
        metadata["over_threshold"] = MetadataValue.json(over)
        names = ", ".join(f"{name} {v['null_pct']:.1f}% > {v['max_null_pct']}%" for name, v in over.items())
        return CheckOutcome(False, f"null rate over threshold: {names}", metadata)
    return CheckOutcome(True, "every feature's null rate is within its threshold", metadata)


def row_count_outcome(view: FeatureView, rows: int, baseline: Baseline) -> CheckOutcome:
    """Warn on an empty partition or one whose row count moved more than allowed from the trailing median."""
    metadata: dict[str, object] = {"rows": rows, "baseline_partitions": len(baseline.row_counts)}
    if rows == 0:
        return CheckOutcome(False, "the partition is empty", metadata)
    if len(baseline.row_counts) < 2:
        return CheckOutcome(True, "not enough trailing partitions for a baseline yet", metadata)
    median = stats.median(baseline.row_counts)
    change = rows / median - 1 if median else float("inf")
    metadata.update({"baseline_median_rows": median, "change": round(change, 4)})
    if abs(change) > view.quality.max_row_count_change:
        return CheckOutcome(False, f"{rows} rows is {change:+.0%} vs the trailing median {median:g}", metadata)
    return CheckOutcome(True, f"{rows} rows, {change:+.0%} vs the trailing median", metadata)


def drift_outcome(
    view: FeatureView, frame: pl.DataFrame, shares: Mapping[str, Mapping[str, float]], baseline: Baseline
) -> CheckOutcome:
    """Warn when a numeric feature's PSI or KS, or a categorical feature's PSI, exceeds the policy's limits."""
    policy = view.quality
    scores: dict[str, dict[str, float]] = {}
    for f in view.schema:
        if f.name in baseline.summaries and f.dtype.is_numeric():
            psi, ks = numeric_drift(frame.get_column(f.name), baseline.summaries[f.name])
            scores[f.name] = {"psi": round(psi, 4), "ks": round(ks, 4)}
        elif is_categorical(f.dtype) and f.name in baseline.shares and shares.get(f.name):
            psi = population_stability_index(baseline.shares[f.name], shares[f.name])
            scores[f.name] = {"psi": round(psi, 4)}
    metadata: dict[str, object] = {f"{name}/{k}": v for name, s in scores.items() for k, v in s.items()}
    metadata["baseline_partitions"] = len(baseline.partitions)
    if not scores:
        return CheckOutcome(True, "not enough trailing partitions for a baseline yet", metadata)
    drifted = {name: s for name, s in scores.items() if s["psi"] > policy.max_psi or s.get("ks", 0.0) > policy.max_ks}
    if drifted:
        metadata["drifted"] = MetadataValue.json(drifted)
        names = ", ".join(
            f"{name} (PSI {s['psi']:.3f}" + (f", KS {s['ks']:.3f})" if "ks" in s else ")")
            for name, s in drifted.items()
        )
        return CheckOutcome(False, f"drift vs the trailing {len(baseline.partitions)} partitions: {names}", metadata)
    return CheckOutcome(True, f"no drift vs the trailing {len(baseline.partitions)} partitions", metadata)
