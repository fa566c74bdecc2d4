"""Point-in-time retrieval: for each entity row, the feature values that were current at its timestamp."""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from feature_assets.compute.served_windows import served_values
from feature_assets.compute.stream_events import stream_events
from feature_assets.language.byte_sizes import parse_byte_size
from feature_assets.language.errors import EntityFrameError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.on_demand import OnDemandFeatureView
from feature_assets.language.repository import FeatureRepository, ResolvedFeatures
from feature_assets.retrieval.asof_query import AsOf, QuerySlice, reach, view_query
from feature_assets.retrieval.entity_rows import ROW, TIME, TIME_CEIL, EntityInput, join_input, read_entity_frame
from feature_assets.retrieval.join_plan import (
    EPOCH,
    JoinBlock,
    ViewVolume,
    column_width,
    matchable_days,
    plan_join,
    sizes_for,
    view_volume,
)
from resources.offline_store import OfflineStore, PartitionSize

OutputFormat = Literal["polars", "pandas"]

_MERGE_ROW_GROUP = 65_536
"""Rows per row group of the blocks written aside for `output_path`, so each merged range reads little else."""
_ENTITY_ROW_OVERHEAD = 3.0
"""How much memory an entity row takes through a join (registered, sorted, its result), relative to its widths."""


@dataclass(frozen=True)
class _OutputColumn:
    """One requested feature of one view version (`key`: `view`, or `view@v<N>`) and its column in the result."""

    view: FeatureView
    key: str
    feature: str
    name: str

    @property
    def dtype(self) -> pl.DataType:
        """Return the feature's declared dtype."""
        return self.view.fields_by_name[self.feature].dtype


def get_historical_features(
    entity_df: EntityInput,
    features: Sequence[str] | FeatureService,
    *,
    repository: FeatureRepository,
    offline_store: OfflineStore,
    full_feature_names: bool = False,
    as_of: AsOf = "event",
    timestamp_column: str = "event_timestamp",
    output: OutputFormat = "polars",
    memory_budget: int | str | None = None,
    output_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame | pd.DataFrame | str:
    """Return `entity_df` plus each requested feature's latest value at or before each row's timestamp.

    `as_of="event"` takes the latest row by event time; `"available"` only rows written (created) by then, and for a
    streaming view exactly what its stream workers served at that instant, from its event log. A reference
    `view@v<N>:feature` reads version N's partitions (a previous version the repository lists).
    The join is planned to hold about `memory_budget` (bytes or e.g. `"2GiB"`; default the store's
    `memory_budget`), the result it returns included. With `output_path` (local or `s3://`), the result is written
    there as Parquet, block by block, in `entity_df`'s row order, and the path is returned instead of a frame.
    """
    if as_of not in get_args(AsOf):
        raise ValueError(f"as_of must be one of {get_args(AsOf)}, got {as_of!r}")
    if output not in get_args(OutputFormat):
        raise ValueError(f"output must be one of {get_args(OutputFormat)}, got {output!r}")
    budget = (
        offline_store.memory_budget_bytes
        if memory_budget is None
        else parse_byte_size(memory_budget, "get_historical_features(memory_budget=)")
    )
    resolved = repository.resolve(features)
    frame = read_entity_frame(entity_df, offline_store)
    columns = _output_columns(resolved, full_feature_names, frame.columns)
    entities = join_input(frame, resolved.views, timestamp_column)
    held = 0 if output_path is not None else entities.height * _output_row_bytes(columns)
    blocks = _join(entities, resolved, columns, offline_store, as_of, max(budget // 4, budget - held))
    if output_path is not None:
        return _write_blocks(
            blocks, resolved, columns, frame, full_feature_names, os.fspath(output_path), offline_store, budget
        )
    values = _apply_on_demand(resolved, _in_row_order(blocks), columns, frame, full_feature_names)
    if output == "polars":
        return frame.hstack(values.get_columns())
    if isinstance(entity_df, pd.DataFrame):
        feature_frame = values.to_pandas()
        feature_frame.index = entity_df.index
        return pd.concat([entity_df, feature_frame], axis=1)
    return frame.hstack(values.get_columns()).to_pandas()


def _output_columns(
    resolved: ResolvedFeatures, full_feature_names: bool, entity_columns: Sequence[str]
) -> list[_OutputColumn]:
    columns: list[_OutputColumn] = []
    owners: dict[str, str] = {}
    for view, key in zip(resolved.views, resolved.keys, strict=True):
        for feature in resolved.features[key]:
            hidden = (key, feature) in resolved.inputs_only
            name = f"{key}__{feature}" if full_feature_names or hidden else feature
            if name in owners:
                raise FeatureReferenceError(
                    f"feature {feature!r} is requested from both view {owners[name]!r} and view {key!r}; "
                    f"pass full_feature_names=True to get columns "
                    f"'{owners[name]}__{feature}' and '{key}__{feature}', or request only one of them"
                )
            if name in entity_columns:
                raise EntityFrameError(
                    f"entity_df already has a column {name!r}, the output name of feature {feature!r} of view "
                    f"{key!r}; rename or drop that column"
                    + ("" if full_feature_names else ", or pass full_feature_names=True")
                )
            owners[name] = key
            columns.append(_OutputColumn(view, key, feature, name))
    for on_demand in resolved.on_demand:
        for feature in resolved.on_demand_features[on_demand.name]:
            name = f"{on_demand.name}__{feature}" if full_feature_names else feature
            if name in owners or name in entity_columns:
                raise FeatureReferenceError(
                    f"feature {feature!r} of on-demand view {on_demand.name!r} clashes with another column; "
                    "pass full_feature_names=True or rename the entity_df column"
                )
            owners[name] = on_demand.name
    return columns


def _apply_on_demand(
    resolved: ResolvedFeatures,
    values: pl.DataFrame,
    columns: Sequence[_OutputColumn],
    frame: pl.DataFrame,
    full_feature_names: bool,
) -> pl.DataFrame:
    """Add the requested on-demand features, computed from the joined inputs and the entity frame's request columns.

    Inputs fetched only for an on-demand view are dropped from the result. On-demand views read current versions,
    whose key is the view's name.
    """
    if not resolved.on_demand:
        return values
    read = {(c.key, c.feature): c.name for c in columns}
    outputs = []
    for on_demand in resolved.on_demand:
        inputs = [
            values.get_column(read[source.name, name]).alias(name)
            for source in on_demand.source_views
            for name in source.feature_names
        ]
        result = on_demand.apply(pl.DataFrame([*inputs, *_request_columns(frame, on_demand)], height=frame.height))
        for feature in resolved.on_demand_features[on_demand.name]:
            name = f"{on_demand.name}__{feature}" if full_feature_names else feature
            outputs.append(result.get_column(feature).alias(name))
    return values.drop([read[pair] for pair in resolved.inputs_only]).hstack(outputs)


def _request_columns(frame: pl.DataFrame, on_demand: OnDemandFeatureView) -> list[pl.Series]:
    """Return the entity frame's request columns an on-demand view needs, cast to their declared dtypes."""
    series = []
    for field in on_demand.request_fields:
        if field.name not in frame.columns:
            raise EntityFrameError(
                f"entity_df lacks column {field.name!r}, a request value of on-demand view {on_demand.name!r}; "
                f"add it (columns: {frame.columns})"
            )
        try:
            series.append(frame.get_column(field.name).cast(field.dtype, strict=True))
        except pl.exceptions.PolarsError as error:
            raise EntityFrameError(
                f"entity_df column {field.name!r} (request value of on-demand view {on_demand.name!r}) must be "
                f"{field.dtype}, got {frame.schema[field.name]}"
            ) from error
    return series


def _join(
    entities: pl.DataFrame,
    resolved: ResolvedFeatures,
    columns: Sequence[_OutputColumn],
    offline_store: OfflineStore,
    as_of: AsOf,
    budget: int,
) -> Iterator[pl.DataFrame]:
    """Yield the feature columns block by block, each with the entity row numbers (`ROW`) in ascending order.

    Blocks are runs of entity rows in time order, planned from the views' partition sizes to fit `budget`.
    """
    times = entities.get_column(TIME)
    first, last = times.min(), times.max()
    sizes = {key: _partition_sizes(offline_store, view, first, last) for view, key in _views(resolved)}
    served = {key for view, key in _views(resolved) if view.streaming and as_of == "available"}
    volumes = {
        key: view_volume(key, view, [c.feature for c in columns if c.key == key], sizes[key])
        for view, key in _views(resolved)
        if key not in served
    }
    ordered = entities.sort(TIME, nulls_last=True) if entities.height > 1 else entities
    timed = entities.height - times.null_count()
    blocks = plan_join(
        ordered.get_column(TIME).head(timed).to_numpy(),
        list(volumes.values()),
        _entity_row_bytes(entities, columns),
        budget,
    )
    if timed < entities.height or not blocks:
        blocks.append(JoinBlock(timed, entities.height, {}))
    with offline_store.duckdb_connection() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET enable_progress_bar = false")
        temporary = tempfile.mkdtemp(prefix="feature_store_join_")
        try:
            connection.execute(f"SET temp_directory = '{temporary}'")
            connection.execute(f"SET memory_limit = '{max(budget, 256 * 2**20)}B'")
            for block in blocks:
                chunk = ordered.slice(block.start, block.stop - block.start)
                yield _join_block(
                    connection, chunk.sort(ROW), resolved, columns, offline_store, as_of, block, volumes, sizes
                )
        finally:
            shutil.rmtree(temporary, ignore_errors=True)


def _join_block(
    connection: duckdb.DuckDBPyConnection,
    entities: pl.DataFrame,
    resolved: ResolvedFeatures,
    columns: Sequence[_OutputColumn],
    offline_store: OfflineStore,
    as_of: AsOf,
    block: JoinBlock,
    volumes: dict[str, ViewVolume],
    sizes: dict[str, list[PartitionSize]],
) -> pl.DataFrame:
    """Return one block's row numbers and feature columns, one DuckDB query per view and hash bucket."""
    times = entities.get_column(TIME)
    first, last = times.min(), times.max()
    ceiling = TIME_CEIL if TIME_CEIL in entities.columns else TIME
    values = [entities.get_column(ROW)]
    connection.register("entities", entities.to_arrow())
    try:
        for view, key in _views(resolved):
            view_columns = [c for c in columns if c.key == key]
            if view.streaming and as_of == "available" and first is not None and last is not None:
                values.extend(_served_columns(view, view_columns, entities, offline_store, first, last))
                continue
            slice_sizes = sizes_for(sizes[key], view, first, last)
            files = [s.path for s in slice_sizes]
            if not files:
                values.extend(
                    pl.repeat(None, entities.height, dtype=c.dtype, eager=True).alias(c.name) for c in view_columns
                )
                continue
            limit = reach(view)
            low = None if limit is None else first - limit // timedelta(microseconds=1)
            buckets = block.buckets.get(key, 1)
            features = {c.feature: c.name for c in view_columns}
            parts = []
            for bucket in range(buckets):
                part = QuerySlice(low, last, buckets, bucket, all(s.unique_event_times for s in slice_sizes))
                sql, parameters = view_query(view, features, as_of, ceiling, part, volumes[key].late_fetch)
                parts.append(connection.sql(sql, params={"files": files, **parameters}).pl())
            frame = parts[0] if buckets == 1 else pl.concat(parts).sort(ROW)
            values.extend(frame.get_column(c.name).cast(c.dtype) for c in view_columns)
    finally:
        connection.unregister("entities")
    return pl.DataFrame(values)


def _in_row_order(blocks: Iterator[pl.DataFrame]) -> pl.DataFrame:
    """Return the blocks' feature columns in entity row order, putting one column in order at a time."""
    parts = list(blocks)
    if len(parts) == 1:
        return parts[0].drop(ROW)
    order = pl.concat([part.get_column(ROW) for part in parts]).arg_sort()
    pieces = {name: [part.get_column(name) for part in parts] for name in parts[0].columns if name != ROW}
    del parts
    return pl.DataFrame([pl.concat(pieces.pop(name)).gather(order) for name in list(pieces)])


def _views(resolved: ResolvedFeatures) -> Iterator[tuple[FeatureView, str]]:
    """Yield each requested view version with its key (`view` or `view@v<N>`)."""
    yield from zip(resolved.views, resolved.keys, strict=True)


def _entity_row_bytes(entities: pl.DataFrame, columns: Sequence[_OutputColumn]) -> float:
    """Return the estimated memory one entity row takes through a block: its join columns and its feature values."""
    widths = sum(column_width(dtype, 16) for dtype in entities.schema.values()) + 16 + _output_row_bytes(columns)
    return widths * _ENTITY_ROW_OVERHEAD


def _output_row_bytes(columns: Sequence[_OutputColumn]) -> float:
    """Return the bytes one result row's feature values take."""
    return sum(column_width(c.dtype, 16) for c in columns)


def _write_blocks(
    blocks: Iterator[pl.DataFrame],
    resolved: ResolvedFeatures,
    columns: Sequence[_OutputColumn],
    frame: pl.DataFrame,
    full_feature_names: bool,
    output_path: str,
    offline_store: OfflineStore,
    budget: int,
) -> str:
    """Write the result to `output_path` as Parquet, in entity row order, holding about one block at a time.

    Each block is written aside sorted by row number; the blocks are then merged range of rows by range of rows,
    each range reading only the row groups that hold it. The file appears whole or not at all: written aside and
    renamed over the target, or one upload to S3.
    """
    on_s3 = output_path.startswith("s3://")
    folder = tempfile.mkdtemp(prefix="feature_store_output_")
    target = os.path.dirname(os.path.abspath(output_path))
    if not on_s3:
        os.makedirs(target, exist_ok=True)
    staging = os.path.join(folder if on_s3 else target, f".{os.path.basename(output_path)}.{uuid.uuid4().hex}.tmp")
    try:
        step = max(16, int(budget / (4 * frame.estimated_size() / max(1, frame.height))))
        parts = []
        for index, values in enumerate(blocks):
            rows = values.get_column(ROW)
            features = _apply_on_demand(resolved, values.drop(ROW), columns, frame[rows], full_feature_names)
            block = frame[rows].hstack([*features.get_columns(), rows])
            step = max(16, min(step, int(budget / (4 * block.estimated_size() / max(1, block.height)))))
            parts.append(os.path.join(folder, f"block-{index:05d}.parquet"))
            block.write_parquet(parts[-1], row_group_size=_MERGE_ROW_GROUP, statistics=True)
        scan = pl.scan_parquet(parts)
        writer = None
        try:
            for start in range(0, max(1, frame.height), step):
                rows_in_range = scan.filter(pl.col(ROW).is_between(start, start + step, closed="left"))
                table = rows_in_range.collect().sort(ROW).drop(ROW).to_arrow()
                writer = writer or pq.ParquetWriter(staging, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        if on_s3:
            offline_store.filesystem.put_file(staging, output_path)
        else:
            os.replace(staging, output_path)
        return output_path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if os.path.exists(staging):
            os.remove(staging)


def _served_columns(
    view: FeatureView,
    columns: Sequence[_OutputColumn],
    entities: pl.DataFrame,
    offline_store: OfflineStore,
    first: int,
    last: int,
) -> list[pl.Series]:
    """Return a streaming view's columns as its stream workers served them at each entity row's time."""
    start = EPOCH + timedelta(microseconds=first) - view.lookback - view.step
    end = EPOCH + timedelta(microseconds=last) + view.step
    requests = entities.select(ROW, *view.join_keys, TIME)
    served = served_values(view, stream_events(view, offline_store, start, end), requests, ROW, TIME)
    return [served.get_column(c.feature).alias(c.name).cast(c.dtype) for c in columns]


def _partition_sizes(
    offline_store: OfflineStore, view: FeatureView, first: int | None, last: int | None
) -> list[PartitionSize]:
    """Return the sizes of the view's partitions that can hold a match for entity times in [first, last]."""
    if first is None or last is None:
        return []
    return offline_store.partition_sizes(view, *matchable_days(view, first, last))
