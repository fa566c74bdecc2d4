"""Retiring a previous version of a feature view: its online keys and, on request, its offline partitions."""

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from feature_assets.language.errors import DefinitionError, OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

SCAN_COUNT = 1000
"""Keys each SCAN call looks at: larger means fewer round trips, each still a short pause of the server."""
UNLINK_BATCH = 500
"""Keys unlinked per pipeline (UNLINK frees memory in the background, so a batch returns at once)."""

_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True)
class RetireReport:
    """What retiring one version of a view deleted, and what the user does next."""

    view: str
    version: int
    online_keys: int
    offline_folder: str | None
    offline_partitions: int | None
    offline_files: int | None

    @property
    def next_step(self) -> str:
        """Return what the user does after the data is gone: remove the version from the definitions."""
        return (
            f"remove FeatureView {self.view!r} v{self.version} from the repository's previous_versions "
            f"(references to '{self.view}@v{self.version}:...' then fail)"
        )


def key_patterns(key_prefix: str, view: FeatureView) -> list[str]:
    """Return the SCAN MATCH patterns of every online key of one view version (entity hashes, stream keys)."""
    prefix = _GLOB_SPECIALS.sub(r"\\\1", key_prefix)
    patterns = [f"{prefix}:{{*}}:{view.name}:v{view.version}"]
    if view.streaming:
        patterns.append(f"{prefix}:{{{view.name}:v{view.version}:p*}}:*")
    return patterns


def retire_version(
    repository: FeatureRepository,
    view: str,
    version: int,
    *,
    online_store: RedisOnlineStore,
    offline_store: OfflineStore | None = None,
) -> RetireReport:
    """Delete every online key of a previous version of `view` and, with `offline_store`, its offline folder.

    The current version is refused. Online keys are found by SCAN (on a Cluster, on every primary) and unlinked in
    pipelined batches; run it again to finish after an interruption.
    """
    current = repository.view(view)
    if version == current.version:
        raise DefinitionError(
            f"FeatureView {current.name!r} v{version} is the current version and serves live traffic; it cannot be "
            f"retired. Bump the view's version, list v{version} in previous_versions and publish the new version, "
            "then retire it"
        )
    retired = repository.view(f"{current.name}@v{version}")
    online_keys = 0
    client = online_store.client
    try:
        for pattern in key_patterns(online_store.key_prefix, retired):
            online_keys += _unlink_all(client, client.scan_iter(match=pattern, count=SCAN_COUNT))
    except (redis.RedisError, OSError) as error:
        raise OnlineStoreError(
            f"retiring FeatureView {current.name!r} v{version} failed after {online_keys} online keys were deleted "
            f"({error}); run it again once Redis is reachable"
        ) from error
    if offline_store is None:
        return RetireReport(current.name, version, online_keys, None, None, None)
    folder = offline_store.view_root(retired)
    partitions = len(offline_store.list_partitions(retired))
    filesystem = offline_store.filesystem
    files = len(filesystem.find(folder)) if filesystem.exists(folder) else 0
    if files:
        filesystem.rm(folder, recursive=True)
    return RetireReport(current.name, version, online_keys, posixpath.join(folder, ""), partitions, files)


def _unlink_all(client: redis.Redis | RedisCluster, keys: Iterable[bytes]) -> int:
    """UNLINK `keys` in pipelined batches; return how many existed."""
    unlinked, batch = 0, []
    for key in keys:
        batch.append(key)
        if len(batch) == UNLINK_BATCH:
            unlinked += _unlink(client, batch)
            batch = []
    return unlinked + (_unlink(client, batch) if batch else 0)


def _unlink(client: redis.Redis | RedisCluster, keys: list[bytes]) -> int:
    """UNLINK one batch in one pipeline, one key per command (a Cluster routes each to its slot's node)."""
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.unlink(key)
    return sum(pipeline.execute())
