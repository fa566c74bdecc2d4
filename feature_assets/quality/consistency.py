"""Online/offline consistency: a sample of a published partition compared with what Redis serves."""

import zlib
from datetime import UTC, datetime

import polars as pl
from dagster import MetadataValue

from feature_assets.language.feature_view import FeatureView
from feature_assets.quality.check_outcome import CheckOutcome
from resources.online_response import PRESENT
from resources.online_store import RedisOnlineStore

EXAMPLES = 10
CONSISTENCY_CHECK = "consistency"
CONSISTENCY_DESCRIPTION = (
    "Samples entities of the published partition and compares Redis with the offline store; an online value "
    "may be newer (a later partition or a push) but never older or different at the same event time."
)


def compare_online_offline(
    view: FeatureView, offline: pl.DataFrame, online_store: RedisOnlineStore, partition_key: str
) -> CheckOutcome:
    """Return the outcome for a seeded sample of `offline` (latest rows per entity) against Redis."""
    policy = view.quality
    sample = offline.sample(n=min(policy.consistency_sample, offline.height), seed=zlib.crc32(partition_key.encode()))
    if sample.is_empty():
        return CheckOutcome(True, "nothing published")
    features = [f"{view.name}:{name}" for name in view.feature_names]
    response = online_store.get_online_features(
        features, sample.select(view.join_keys).to_dicts(), include_timestamps=True, full_feature_names=True
    )
    online = response.to_dict()
    statuses = response.statuses
    now = datetime.now(UTC)
    mismatches: list[dict[str, object]] = []
    newer = expired = 0
    for index, row in enumerate(sample.iter_rows(named=True)):
        online_time = online[f"{view.name}__event_timestamp"][index]
        first_status = statuses[f"{view.name}__{view.feature_names[0]}"][index]
        if view.ttl is not None and row["event_timestamp"] + view.ttl < now:
            expired += 1
            continue
        if first_status != PRESENT or online_time is None or online_time < row["event_timestamp"]:
            mismatches.append(_example(view, row, "missing" if online_time is None else "older online", None, None))
            continue
        if online_time > row["event_timestamp"]:
            newer += 1
            continue
        for name in view.feature_names:
            online_value = online[f"{view.name}__{name}"][index]
            if online_value != row[name]:
                mismatches.append(_example(view, row, name, row[name], online_value))
                break
    compared = sample.height - expired
    rate = len(mismatches) / compared if compared else 0.0
    metadata: dict[str, object] = {
        "sampled": sample.height,
        "compared": compared,
        "mismatches": len(mismatches),
        "mismatch_rate": round(rate, 6),
        "newer_online": newer,
        "expired": expired,
    }
    if mismatches:
        metadata["examples"] = MetadataValue.md(_examples_table(mismatches[:EXAMPLES]))
    return CheckOutcome(
        rate <= policy.max_mismatch_rate,
        f"{len(mismatches)} of {compared} sampled entities differ online ({rate:.1%})",
        metadata,
    )


def _example(view: FeatureView, row: dict, what: str, offline: object, online: object) -> dict[str, object]:
    return {"entity": {k: row[k] for k in view.join_keys}, "what": what, "offline": offline, "online": online}


def _examples_table(examples: list[dict[str, object]]) -> str:
    lines = ["| entity | feature | offline | online |", "|---|---|---|---|"]
    lines += [f"| {e['entity']} | {e['what']} | {e['offline']} | {e['online']} |" for e in examples]
    return "\n".join(lines)
