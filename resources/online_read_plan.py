"""Read plans: a feature list or service resolved once into per-view keys, hash fields and decoders."""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from feature_assets.language.errors import FeatureReferenceError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.on_demand import OnDemandFeatureView
from feature_assets.language.repository import FeatureRepository
from resources import online_encoding as encoding
from resources.entity_rows import EntityRows, check_key_dtype, request_values
from resources.online_response import EXPIRED, NOT_FOUND, PRESENT
from resources.redis_transport import Reply
from resources.stream_keys import partition_of, partitions, tile_key_affixes
from resources.stream_scripts import read_script

Features = Sequence[str] | FeatureService


def micros(duration: timedelta | None) -> int | None:
    """Return a duration in whole microseconds (None stays None)."""
    return None if duration is None else duration // timedelta(microseconds=1)


@dataclass(frozen=True)
class ViewPlan:
    """How to read some features of one view version (`name`: `view`, or `view@v<N>` for a previous version)."""

    name: str
    join_keys: tuple[str, ...]
    key_before: str
    key_after: str
    read_field: bytes
    field: bytes
    splits: int
    indices: tuple[int, ...]
    decoders: tuple[encoding.Decoder, ...]
    column_decoders: tuple[encoding.ColumnDecoder, ...]
    columns: tuple[str, ...]
    ttl_us: int | None
    timestamp_column: str
    script: str | None = None
    script_sha: bytes | None = None
    partitions: int = 0

    def keys(self, entity_columns: Mapping[str, list[object]]) -> list[bytes]:
        """Return the Redis key of each entity row (of a streaming view: its tile hash)."""
        before, after = self.key_before, self.key_after
        if self.partitions:
            rows = zip(*(entity_columns[key] for key in self.join_keys), strict=True)
            entities = [encoding.entity_key(values) for values in rows]
            count = self.partitions
            return [f"{before}{partition_of(entity, count)}{after}{entity}".encode() for entity in entities]
        if len(self.join_keys) == 1:
            encode = encoding.encode_key_value
            return [(before + encode(value) + after).encode() for value in entity_columns[self.join_keys[0]]]
        rows = zip(*(entity_columns[key] for key in self.join_keys), strict=True)
        return [(before + encoding.entity_key(values) + after).encode() for values in rows]

    def decode(
        self,
        packed: list[Reply],
        now_us: int,
        columns: dict[str, list[object]],
        statuses: dict[str, list[str]],
        timestamps: dict[str, list[object]] | None,
    ) -> None:
        """Decode this view's HGET replies into feature columns, statuses and (when given a dict) event times."""
        if not packed:
            for name in self.columns:
                columns[name], statuses[name] = [], []
            if timestamps is not None:
                timestamps[self.timestamp_column] = []
            return
        separator, splits = encoding.VALUE_SEPARATOR_BYTES, self.splits
        if len(packed) == 1 and packed[0] is not None:
            self._decode_one(packed[0].split(separator, splits), now_us, columns, statuses, timestamps)
            return
        row_statuses = [PRESENT] * len(packed)
        if None in packed:
            for index, raw in enumerate(packed):
                if raw is None:
                    row_statuses[index] = NOT_FOUND
            blank = [b""] * (splits + 1)
            rows = [raw.split(separator, splits) if raw is not None else blank for raw in packed]
        else:
            rows = [raw.split(separator, splits) for raw in packed]
        orders, *pieces = zip(*rows, strict=True)
        raw_columns = [pieces[index] for index in self.indices]
        expired: list[int] = []
        if self.ttl_us is not None:
            oldest_live = encoding.order_threshold(now_us - self.ttl_us)
            if min(orders) < oldest_live:
                expired = [index for index, order in enumerate(orders) if order and order < oldest_live]
                for index in expired:
                    row_statuses[index] = EXPIRED
        decoders = zip(self.columns, self.decoders, self.column_decoders, raw_columns, strict=True)
        for name, decode, decode_column, raw_column in decoders:
            if all(raw_column):
                values = decode_column(raw_column)
            else:
                values = [decode(raw) if raw else None for raw in raw_column]
            for index in expired:
                values[index] = None
            columns[name] = values
            statuses[name] = row_statuses.copy()
        if timestamps is not None:
            decode_time = encoding.decode_order_timestamp
            timestamps[self.timestamp_column] = [decode_time(raw) if raw else None for raw in orders]

    def _decode_one(
        self,
        row: list[bytes],
        now_us: int,
        columns: dict[str, list[object]],
        statuses: dict[str, list[str]],
        timestamps: dict[str, list[object]] | None,
    ) -> None:
        """Decode the one stored row of a single-entity read (the common serving case) without column passes."""
        order, pieces = row[0], row[1:]
        expired = self.ttl_us is not None and order < encoding.order_threshold(now_us - self.ttl_us)
        status = [EXPIRED if expired else PRESENT]
        for name, decode, index in zip(self.columns, self.decoders, self.indices, strict=True):
            raw = pieces[index]
            columns[name] = [decode(raw) if raw and not expired else None]
            statuses[name] = status.copy()
        if timestamps is not None:
            timestamps[self.timestamp_column] = [encoding.decode_order_timestamp(order)]


@dataclass(frozen=True)
class OnDemandPlan:
    """How to compute an on-demand view's requested features: its inputs' read columns and its output columns."""

    view: OnDemandFeatureView
    inputs: dict[str, str]
    input_dtypes: dict[str, pl.DataType]
    outputs: dict[str, str]


@dataclass(frozen=True)
class ReadPlan:
    """A resolved request: view plans, the join keys needed (with dtype and first view) and output dtypes."""

    views: tuple[ViewPlan, ...]
    join_keys: dict[str, tuple[pl.DataType, str]]
    feature_columns: tuple[str, ...]
    dtypes: dict[str, pl.DataType]
    on_demand: tuple[OnDemandPlan, ...] = ()
    references: tuple[str, ...] = ()
    """The requested `view:feature` (or `view@v<N>:feature`) references, in request order, for usage counts."""


def build_read_plan(
    repository: FeatureRepository, key_prefix: str, features: Features, full_feature_names: bool
) -> ReadPlan:
    """Resolve features (or a service) into the keys, fields and decoders of one read, checking names and dtypes."""
    resolved = repository.resolve(features)
    join_keys: dict[str, tuple[pl.DataType, str]] = {}
    dtypes: dict[str, pl.DataType] = {}
    owners: dict[str, str] = {}
    read_columns: dict[tuple[str, str], str] = {}
    view_plans = []
    for view, view_key in zip(resolved.views, resolved.keys, strict=True):
        if not view.online:
            raise FeatureReferenceError(
                f"FeatureView {view.name!r} is offline only (online=False); set online=True and publish it"
            )
        for key, dtype in view.key_dtypes.items():
            check_key_dtype(view, key, dtype)
            known = join_keys.setdefault(key, (dtype, view.name))
            if encoding.is_integer_key(known[0]) != encoding.is_integer_key(dtype):
                raise FeatureReferenceError(
                    f"join key {key!r} is {known[0]} in view {known[1]!r} but {dtype} in view {view.name!r}; "
                    "request these views separately"
                )
            dtypes.setdefault(key, dtype)
        names = resolved.features[view_key]
        columns = tuple(
            f"{view_key}__{name}" if full_feature_names or (view_key, name) in resolved.inputs_only else name
            for name in names
        )
        for column, name in zip(columns, names, strict=True):
            read_columns[view_key, name] = column
            if column in owners or column in join_keys:
                other = "a join key" if column in join_keys else f"a feature of view {owners[column]!r}"
                raise FeatureReferenceError(
                    f"feature {name!r} of view {view_key!r} clashes with {other}; "
                    f"pass full_feature_names=True to name columns 'view__feature' (here '{view_key}__{name}')"
                )
            owners[column] = view_key
            dtypes[column] = view.fields_by_name[name].dtype
        timestamp_column = f"{view_key}__event_timestamp"
        dtypes[timestamp_column] = pl.Datetime("us", "UTC")
        values_field = encoding.values_field(view).encode()
        positions = {name: index for index, name in enumerate(view.feature_names, start=1)}
        before, after = encoding.key_affixes(key_prefix, view)
        script = read_script(view) if view.streaming else None
        if view.streaming:
            before, after = tile_key_affixes(key_prefix, view)
        view_plans.append(
            ViewPlan(
                name=view_key,
                join_keys=view.join_keys,
                key_before=before,
                key_after=after,
                read_field=encoding.resp_bulk(values_field),
                field=values_field,
                splits=min(max(positions[name] for name in names) + 1, len(view.feature_names)),
                indices=tuple(positions[name] - 1 for name in names),
                decoders=tuple(encoding.packed_decoder(view.fields_by_name[name].dtype) for name in names),
                column_decoders=tuple(
                    encoding.packed_column_decoder(view.fields_by_name[name].dtype) for name in names
                ),
                columns=columns,
                ttl_us=micros(view.ttl),
                timestamp_column=timestamp_column,
                script=script,
                script_sha=hashlib.sha1(script.encode()).hexdigest().encode() if script else None,
                partitions=partitions(view) if view.streaming else 0,
            )
        )
    on_demand_plans = []
    for on_demand in resolved.on_demand:
        outputs = {
            name: f"{on_demand.name}__{name}" if full_feature_names else name
            for name in resolved.on_demand_features[on_demand.name]
        }
        for name, column in outputs.items():
            if column in owners or column in join_keys:
                raise FeatureReferenceError(
                    f"feature {name!r} of on-demand view {on_demand.name!r} clashes with another column; "
                    "pass full_feature_names=True to name columns 'view__feature'"
                )
            owners[column] = on_demand.name
            dtypes[column] = on_demand.fields_by_name[name].dtype
        inputs = {name: read_columns[view.name, name] for view in on_demand.source_views for name in view.feature_names}
        input_dtypes = {
            name: view.fields_by_name[name].dtype for view in on_demand.source_views for name in view.feature_names
        }
        on_demand_plans.append(OnDemandPlan(on_demand, inputs, input_dtypes, outputs))
    names = [f"{key}__{feature}" if full_feature_names else feature for key, feature in resolved.requested]
    return ReadPlan(
        views=tuple(view_plans),
        join_keys=join_keys,
        feature_columns=tuple(dict.fromkeys(names)),
        dtypes=dtypes,
        on_demand=tuple(on_demand_plans),
        references=tuple(f"{key}:{feature}" for key, feature in resolved.requested),
    )


def apply_on_demand(
    plan: OnDemandPlan,
    entity_rows: EntityRows,
    decoded: dict[str, list[object]],
    statuses: dict[str, list[str]],
) -> None:
    """Compute an on-demand view's requested features from the decoded inputs and the request values."""
    view = plan.view
    inputs = [pl.Series(name, decoded[column], dtype=plan.input_dtypes[name]) for name, column in plan.inputs.items()]
    frame = pl.DataFrame([*inputs, *request_values(entity_rows, view.request_fields, view.name).values()])
    output = view.apply(frame)
    for name, column in plan.outputs.items():
        values = output.get_column(name).to_list()
        decoded[column] = values
        statuses[column] = [NOT_FOUND if value is None else PRESENT for value in values]
