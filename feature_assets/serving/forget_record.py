"""What forgetting an entity did: the report, its audit record (never the key values) and its marks in Dagster.

Training sets are marked for re-materialization with a runless materialization whose code version is the forget
record's: Dagster shows an asset as stale ("has a new code version") while its latest data was not produced by
its current definition, until it is materialized again. A new data version on the views' partitions would not do
it: Dagster does not propagate staleness from a daily-partitioned asset to an unpartitioned one downstream.
"""

import json
import logging
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.feature_view import FeatureView
from resources import offline_rewrite
from resources.offline_store import OfflineStore

AUDIT_FOLDER = "_audit/forget"
TRAINING_SET = "training_set"
audit_log = logging.getLogger("feature_store.audit")


@dataclass(frozen=True)
class FileRewrite:
    """One Parquet file holding the entity: its path under the root, its kind, its owner and the rows removed."""

    path: str
    kind: str
    owner: str
    rows_removed: int


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting one entity found and removed (in a dry run: what it would remove).

    `training_sets` names those whose output held the entity: they need materializing again, and are marked so in
    Dagster when `marked_in_dagster`.
    """

    record_id: str
    at: datetime
    actor: str
    key_names: tuple[str, ...]
    entity_sha256: str
    views: tuple[str, ...]
    online: Mapping[str, Mapping[str, int]]
    files: tuple[FileRewrite, ...]
    training_sets: tuple[str, ...]
    sources_outside_root: tuple[str, ...]
    dry_run: bool
    marked_in_dagster: bool = False
    audit_path: str | None = None

    def rows_removed_by_owner(self) -> dict[str, int]:
        """Return the offline rows removed per view, training set or source."""
        totals: dict[str, int] = {}
        for rewrite in self.files:
            totals[rewrite.owner] = totals.get(rewrite.owner, 0) + rewrite.rows_removed
        return totals

    def record(self) -> dict[str, object]:
        """Return the audit record: who, what (key names and a digest, never the values), when, counts."""
        return {
            "id": self.record_id,
            "when": self.at.isoformat(),
            "who": self.actor,
            "what": {"entity_keys": list(self.key_names), "entity_sha256": self.entity_sha256},
            "dry_run": self.dry_run,
            "views": list(self.views),
            "online": {view: dict(counts) for view, counts in self.online.items()},
            "offline_rows_removed": self.rows_removed_by_owner(),
            "files": [asdict(rewrite) for rewrite in self.files],
            "training_sets_to_rematerialize": list(self.training_sets),
            "marked_in_dagster": self.marked_in_dagster,
            "sources_outside_root": list(self.sources_outside_root),
        }


def write_audit(offline_store: OfflineStore, report: ForgetReport) -> str:
    """Write the report's audit record as a new file under `<root>/_audit/forget/` and log it; return its path."""
    line = json.dumps(report.record(), sort_keys=True)
    name = f"{report.at.strftime('%Y%m%dT%H%M%S%fZ')}-{report.record_id}.json"
    path = offline_rewrite.write_bytes(
        offline_store, offline_store.resolve(posixpath.join(AUDIT_FOLDER, name)), (line + "\n").encode()
    )
    audit_log.info(line)
    return path


def _common_metadata(report: ForgetReport) -> dict[str, object]:
    return {
        "forget_record": report.record_id,
        "forgotten_entity_keys": dg.MetadataValue.json(list(report.key_names)),
        "forgotten_entity_sha256": report.entity_sha256,
        "forgotten_by": report.actor,
    }


def mark_training_sets(
    instance: dg.DagsterInstance, report: ForgetReport, keys: Mapping[str, dg.AssetKey], rewrites: Sequence[FileRewrite]
) -> None:
    """Record on each training set whose output held the entity that it must be materialized again."""
    for name, key in keys.items():
        removed = sum(r.rows_removed for r in rewrites if r.owner == name and r.kind == TRAINING_SET)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key,
                description="Rows of a forgotten entity were removed outside a run; materialize it again.",
                metadata={**_common_metadata(report), "rows_removed": removed, "needs_rematerialization": True},
                tags={DATA_VERSION_TAG: f"forget-{report.record_id}", CODE_VERSION_TAG: f"forget-{report.record_id}"},
            )
        )


def observe_views(
    instance: dg.DagsterInstance, report: ForgetReport, views: Sequence[FeatureView], rewrites: Sequence[FileRewrite]
) -> None:
    """Record on each view whose files held the entity how many rows and files the erasure rewrote."""
    for view in views:
        own = [rewrite for rewrite in rewrites if rewrite.owner == view.name]
        if not own:
            continue
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=view_asset_key(view),
                description="Rows of a forgotten entity were removed from the view's files.",
                metadata={
                    **_common_metadata(report),
                    "rows_removed": sum(rewrite.rows_removed for rewrite in own),
                    "files_rewritten": dg.MetadataValue.json([rewrite.path for rewrite in own]),
                },
            )
        )
