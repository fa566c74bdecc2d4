"""Rewriting Parquet files of the offline store without some rows: one atomic replace per file, its schema kept.

A file is found to hold rows by a lazy scan filtered on the predicate (row groups whose statistics exclude the
values are skipped), and rewritten whole through `OfflineStore.write_file`: locally a file written beside the
target and renamed over it, on S3 one PUT of the full object. Either way a crash leaves the old or the new file.
"""

import os
import uuid
from collections.abc import Callable, Mapping

import polars as pl

from resources.offline_store import UNIQUE_EVENT_TIMES, OfflineStore

PredicateFor = Callable[[pl.Schema], pl.Expr | None]


def full_path(store: OfflineStore, listed: str) -> str:
    """Return a path as the filesystem lists it (`bucket/key` on S3) in the form Polars and the store read."""
    return f"s3://{listed}" if store.is_s3 and "://" not in listed else listed


def parquet_files(store: OfflineStore, folder: str) -> list[str]:
    """Return every `.parquet` file under `folder` (a full path), sorted; none when the folder does not exist."""
    fs = store.filesystem
    if not fs.exists(folder):
        return []
    return sorted(full_path(store, path) for path in fs.find(folder) if path.endswith(".parquet"))


def glob_files(store: OfflineStore, pattern: str) -> list[str]:
    """Return the files matching a glob (a full path), sorted."""
    return sorted(full_path(store, path) for path in store.filesystem.glob(pattern))


def is_under_root(store: OfflineStore, path: str) -> bool:
    """Return whether a full path lies under the store's root."""
    root = store.root if store.is_s3 else os.path.abspath(store.root)
    return path.startswith(root.rstrip("/") + "/")


def _scan(store: OfflineStore, path: str) -> pl.LazyFrame:
    return pl.scan_parquet(path, storage_options=store.storage_options, hive_partitioning=False)


def count_matching(store: OfflineStore, predicates: Mapping[str, PredicateFor]) -> dict[str, int]:
    """Return how many rows of each file match the predicate built from its schema (None: the file counts 0).

    The files are scanned in parallel, each filtered on its predicate (row groups whose statistics exclude the
    values are skipped).
    """
    counts = dict.fromkeys(predicates, 0)
    queries = {}
    for path, predicate_for in predicates.items():
        predicate = predicate_for(_scan(store, path).collect_schema())
        if predicate is not None:
            queries[path] = _scan(store, path).filter(predicate).select(pl.len())
    for path, result in zip(queries, pl.collect_all(queries.values()), strict=True):
        counts[path] = result.item()
    return counts


def rewrite_without(store: OfflineStore, path: str, predicate_for: PredicateFor) -> tuple[int, int]:
    """Replace a file by its rows not matching the predicate, keeping its columns and dtypes; return (removed, kept).

    A file with no matching row is not written.
    """
    frame = pl.read_parquet(path, storage_options=store.storage_options, hive_partitioning=False)
    predicate = predicate_for(frame.schema)
    if predicate is None:
        return 0, frame.height
    kept = frame.filter(~predicate)
    removed = frame.height - kept.height
    if removed:
        metadata = pl.read_parquet_metadata(path, storage_options=store.storage_options)
        store.write_file(path, kept, {k: v for k, v in metadata.items() if k == UNIQUE_EVENT_TIMES})
    return removed, kept.height


def write_bytes(store: OfflineStore, path: str, data: bytes) -> str:
    """Write a new file at a full path in one step: locally written aside and renamed, on S3 one PUT."""
    if store.is_s3:
        store.filesystem.pipe_file(path, data)
        return path
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(staging, "wb") as file:
            file.write(data)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path
