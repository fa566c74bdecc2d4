"""Forgetting one entity (the right to be forgotten): its online keys, its offline rows, training marks, an audit.

Offline, every Parquet file that can hold the entity's rows is scanned (filtered on the key columns) and each one
that does is rewritten without them, one atomic replace per file: every version's partitions, quarantined
partitions and pushed event logs of the views keyed by the entity, every training set output under
`<root>/training/`, the label files of the given training sets and the views' source files. Files outside the
store's root (a source elsewhere) are never written; the report lists them, since re-reading them would bring
the entity back. A crash leaves each file old or new, and running forget again finishes the job: each step finds
what is left and removes it.
"""

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import dagster as dg
import redis

from feature_assets.language.asset_keys import training_set_asset_key
from feature_assets.language.errors import OnlineStoreError
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.training_set import TrainingSet
from feature_assets.serving.erasure_scope import ErasureScope, erasure_scope
from feature_assets.serving.forget_record import (
    TRAINING_SET,
    FileRewrite,
    ForgetReport,
    mark_training_sets,
    observe_views,
    write_audit,
)
from resources import offline_rewrite
from resources.entity_erasure import erase_online_traces, find_online_traces
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

TRAINING_FOLDER = "training"
_VERSION_FOLDER = re.compile(r"v(\d+)")


@dataclass(frozen=True)
class _Candidate:
    """A Parquet file that may hold the entity, with how to find its rows from the file's schema."""

    path: str
    kind: str
    owner: str
    predicate_for: offline_rewrite.PredicateFor


def forget_entity(
    repository: FeatureRepository,
    entity: Mapping[str, object],
    *,
    online_store: RedisOnlineStore,
    offline_store: OfflineStore,
    views: Sequence[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    training_sets: Sequence[TrainingSet] = (),
    actor: str = "cli",
    dry_run: bool = False,
) -> ForgetReport:
    """Delete every trace of one entity online and offline, mark the training sets that held it, and audit it.

    Args:
        repository: the views; those whose join keys are all in `entity` are concerned (or only `views`).
        entity: join key values, e.g. `{"driver_id": 42}`; integers for integer keys, strings for String keys.
        online_store: Redis: every version's hashes, streaming tiles and stream entries of the entity go.
        offline_store: its Parquet files holding the entity are rewritten without it.
        views: restrict the erasure to these views (each needs all its join keys in `entity`).
        instance: when given, training sets whose output held the entity show as stale in Dagster, and views
            get an observation counting the rows removed.
        training_sets: their label files are rewritten too (outputs under `training/` always are).
        actor: who asked, for the audit record.
        dry_run: find and count only; change nothing and write no audit record.

    Raises:
        EntityFrameError: an unknown join key, a value of the wrong type, or no view keyed by the given keys.
        OnlineStoreError: Redis failed; running forget again is safe.
    """
    scope = erasure_scope(repository, entity, views)
    candidates, outside = _candidates(offline_store, scope, training_sets)
    counts = offline_rewrite.count_matching(offline_store, {c.path: c.predicate_for for c in candidates})
    holding = [candidate for candidate in candidates if counts[candidate.path]]
    client = online_store.client
    try:
        traces = find_online_traces(client, online_store.key_prefix, scope.versions, scope.entity)
    except (redis.RedisError, OSError) as error:
        raise OnlineStoreError(f"finding the entity's keys in Redis failed: {error}; check that Redis is up") from error
    report = ForgetReport(
        record_id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        actor=actor,
        key_names=scope.key_names,
        entity_sha256=scope.digest,
        views=tuple(view.name for view in scope.views),
        online=traces.counts(),
        files=tuple(_rewrite(offline_store, c, counts[c.path]) for c in holding),
        training_sets=tuple(sorted({c.owner for c in holding if c.kind == TRAINING_SET})),
        sources_outside_root=tuple(outside),
        dry_run=dry_run,
    )
    if dry_run:
        return report
    try:
        erase_online_traces(client, traces)
    except (redis.RedisError, OSError) as error:
        raise OnlineStoreError(
            f"deleting the entity's keys in Redis failed: {error}; nothing offline was changed yet, run forget "
            "again once Redis is reachable"
        ) from error
    if instance is not None:
        by_name = {training_set.name: training_set_asset_key(training_set) for training_set in training_sets}
        keys = {name: by_name.get(name, dg.AssetKey([TRAINING_FOLDER, name])) for name in report.training_sets}
        report = replace(report, marked_in_dagster=True)
        mark_training_sets(instance, report, keys, report.files)
    rewrites = []
    for candidate in holding:
        removed, _ = offline_rewrite.rewrite_without(offline_store, candidate.path, candidate.predicate_for)
        rewrites.append(_rewrite(offline_store, candidate, removed))
    report = replace(report, files=tuple(rewrites))
    if instance is not None:
        observe_views(instance, report, scope.views, report.files)
    return replace(report, audit_path=write_audit(offline_store, report))


def _rewrite(store: OfflineStore, candidate: _Candidate, removed: int) -> FileRewrite:
    root = offline_rewrite.full_path(store, store.resolve(""))
    return FileRewrite(candidate.path.removeprefix(root).lstrip("/"), candidate.kind, candidate.owner, removed)


def _candidates(
    store: OfflineStore, scope: ErasureScope, training_sets: Sequence[TrainingSet]
) -> tuple[list[_Candidate], list[str]]:
    """Return the files that may hold the entity, each once, and the source paths outside the root."""
    found: dict[str, _Candidate] = {}
    outside: list[str] = []
    for view in scope.views:
        folder = store.resolve(view.name)
        for path in offline_rewrite.parquet_files(store, folder):
            parts = path[len(offline_rewrite.full_path(store, folder)) :].strip("/").split("/")
            version = _VERSION_FOLDER.fullmatch(parts[0])
            if len(parts) < 2 or version is None:
                continue
            predicate_for = functools.partial(scope.view_predicate, scope.version_of(view, int(version[1])))
            kind = parts[1] if parts[1] in ("quarantine", "pushed") else "partition"
            found.setdefault(path, _Candidate(path, kind, view.name, predicate_for))
    training_root = store.resolve(TRAINING_FOLDER)
    for path in offline_rewrite.parquet_files(store, training_root):
        owner = path[len(offline_rewrite.full_path(store, training_root)) :].strip("/").split("/")[0]
        found.setdefault(path, _Candidate(path, TRAINING_SET, owner, scope.any_predicate))
    globs = [(training_set.labels.path, "labels", training_set.name) for training_set in training_sets]
    globs += [(view.source.path, "source", view.source.name) for view in scope.views]
    for pattern, kind, owner in dict.fromkeys(globs):
        resolved = offline_rewrite.full_path(store, store.resolve(pattern))
        if not offline_rewrite.is_under_root(store, resolved):
            outside.append(resolved)
            continue
        for path in offline_rewrite.glob_files(store, resolved):
            if path.endswith(".parquet"):
                found.setdefault(path, _Candidate(path, kind, owner, scope.any_predicate))
    return sorted(found.values(), key=lambda candidate: candidate.path), sorted(set(outside))
