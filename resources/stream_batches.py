"""Batches of stream entries folded into per-entity, per-bucket partial aggregates: the apply script's arguments.

A worker parses each batch once, here, with NumPy: malformed entries are left out (they stay pending and reach the
dead-letter stream after too many deliveries), late ones are only counted, and the others are folded into one delta
per (entity, bucket): events, newest event time and, per column, count, sum, min, max and last (event, arrival,
value). The deltas travel as packed little-endian doubles (NaN where there is no value), the layout of a tile
record with the bucket and its event count in front (see `resources.stream_keys`). The apply script merges them
into the stored tiles only if every entry of the batch is still pending, and acknowledges them in the same step.
"""

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np

from feature_assets.language.feature_view import FeatureView
from resources.stream_keys import column_kinds

Entry = tuple[bytes, Sequence[bytes] | Mapping[bytes, bytes] | None]
_ONE_MICROSECOND = timedelta(microseconds=1)
SMALL_BATCH = 32


@dataclass(frozen=True)
class StreamSpec:
    """What folding needs from a streaming view: step, allowed lateness and its columns' partials."""

    step_us: int
    lateness_us: int
    columns: tuple[tuple[bytes, tuple[str, ...]], ...]

    @classmethod
    def of(cls, view: FeatureView) -> "StreamSpec":
        """Return the spec of a streaming view."""
        kinds = column_kinds(view)
        return cls(
            view.step // _ONE_MICROSECOND,
            (view.allowed_lateness or timedelta(0)) // _ONE_MICROSECOND,
            tuple((name.encode(), tuple(kinds[name])) for name in view.stream_columns),
        )

    @property
    def fields(self) -> list[bytes]:
        """Return the entry fields a fold reads, in the order producers write them: key, times, columns."""
        return [b"k", b"t", b"a", *(name for name, _ in self.columns)]


@dataclass
class Fold:
    """A folded batch: the IDs to acknowledge, the apply script's arguments after them, and the invalid entries."""

    ids: list[bytes]
    arguments: list[bytes | str | int]
    invalid: list[bytes]
    events: int


def fold_entries(spec: StreamSpec, entries: Sequence[Entry], vectorized: bool | None = None, cut: int = 0) -> Fold:
    """Fold one partition's entries (ascending IDs, fields as a flat list or a mapping; None when deleted).

    Entries that arrived at or before `cut` (µs; a rebuild of the tiles from the event log covered them) are
    acknowledged and counted, not folded. The arguments are: late, invalid, missing and covered counts, the cut,
    the newest event time ('' when none), the entity count, the entities' packed headers (arrival step, arrival,
    bucket count), the buckets' packed deltas, then the entity keys. Batches of `SMALL_BATCH` entries or more are
    folded with NumPy, smaller ones (where NumPy's fixed cost would dominate a fresh event's latency) in plain
    Python, to the same bytes; `vectorized` forces either.
    """
    fields = spec.fields
    width = 2 * len(fields)
    ids, rows = [], []
    missing = 0
    for entry_id, raw in entries:
        if raw is None:
            missing += 1
            continue
        ids.append(entry_id)
        if raw.__class__ is list and raw[:width:2] == fields:
            rows.append(raw[1:width:2])
        else:
            named = raw if isinstance(raw, Mapping) else dict(zip(raw[::2], raw[1::2], strict=True))
            rows.append([named.get(name) for name in fields])
    if vectorized is None:
        vectorized = len(rows) >= SMALL_BATCH
    folded = _Batch.parse(spec, ids, rows, cut).fold(spec) if vectorized else _fold_rows(spec, ids, rows, cut)
    if missing:
        valid = set(folded.valid_ids)
        acknowledged = [entry_id for entry_id, raw in entries if raw is None or entry_id in valid]
    else:
        acknowledged = folded.valid_ids
    counts = [folded.late, len(folded.invalid), missing, folded.covered, cut, folded.newest, len(folded.keys)]
    arguments: list[bytes | str | int] = [*counts, folded.heads, folded.records, *folded.keys]
    return Fold(acknowledged, arguments, folded.invalid, len(folded.valid_ids))


class _Folded(NamedTuple):
    """A folded batch before packing into arguments."""

    valid_ids: list[bytes]
    invalid: list[bytes]
    late: int
    covered: int
    heads: bytes
    records: bytes
    keys: list[bytes]
    newest: int | str


def _fold_rows(spec: StreamSpec, ids: list[bytes], rows: list[Sequence[bytes | None]], cut: int) -> _Folded:
    """Fold parsed rows (k, t, a, columns) one by one: the small-batch twin of `_Batch.fold`."""
    numeric = [len(kinds) > 1 for _, kinds in spec.columns]
    valid, invalid, late, covered, newest = [], [], 0, 0, None
    entities: dict[bytes, list] = {}
    for entry_id, (key, event_text, arrival_text, *texts) in zip(ids, rows, strict=True):
        try:
            event = int(event_text)
            arrival = int(arrival_text if arrival_text is not None else entry_id.split(b"-")[0] + b"000")
            values = [
                (_finite(text) if is_numeric else 1.0) if text else None
                for text, is_numeric in zip(texts, numeric, strict=True)
            ]
        except (ValueError, TypeError, OverflowError):
            invalid.append(entry_id)
            continue
        if not _valid_key(key):
            invalid.append(entry_id)
            continue
        valid.append(entry_id)
        if arrival <= cut:
            covered += 1
            continue
        if arrival - event > spec.lateness_us:
            late += 1
            continue
        newest = event if newest is None or event > newest else newest
        entity = entities.setdefault(key, [arrival // spec.step_us, arrival, {}])
        entity[0], entity[1] = max(entity[0], arrival // spec.step_us), max(entity[1], arrival)
        entity[2].setdefault(-(-event // spec.step_us), []).append((event, arrival, values))
    heads, records = [], []
    for arrival_step, arrival, buckets in entities.values():
        heads += [arrival_step, arrival, len(buckets)]
        for bucket, events in sorted(buckets.items()):
            records += [bucket, len(events), max(event for event, _, _ in events)]
            for index, (_, kinds) in enumerate(spec.columns):
                given = [
                    (event, arrival, values[index]) for event, arrival, values in events if values[index] is not None
                ]
                records.append(len(given))
                for kind in kinds[1:]:
                    if not given:
                        records += [math.nan] * (3 if kind == "l" else 1)
                    elif kind == "l":
                        records += max(given)
                    else:
                        parts = [value for _, _, value in given]
                        records.append(sum(parts) if kind == "s" else min(parts) if kind == "n" else max(parts))
    heads_packed, records_packed = struct.pack(f"<{len(heads)}d", *heads), struct.pack(f"<{len(records)}d", *records)
    newest_text = "" if newest is None else newest
    return _Folded(valid, invalid, late, covered, heads_packed, records_packed, list(entities), newest_text)


def _finite(text: bytes) -> float:
    """Return a decimal number that must be finite."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


@dataclass
class _Batch:
    """A batch's well-formed entries as arrays: entity keys, event and arrival times (µs), values (NaN: null)."""

    valid_ids: list[bytes]
    invalid: list[bytes]
    late: int
    covered: int
    keys: list[bytes]
    event: np.ndarray
    arrival: np.ndarray
    values: list[np.ndarray]

    @classmethod
    def parse(cls, spec: StreamSpec, ids: list[bytes], rows: list[Sequence[bytes | None]], cut: int = 0) -> "_Batch":
        """Parse the rows (k, t, a, columns); rows whose key, times or numbers do not parse are invalid.

        Rows that arrived at or before `cut` are counted as covered, and rows later than the allowed lateness as
        late; neither is kept.
        """
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return cls([], [], 0, 0, [], empty, empty, [np.empty(0) for _ in spec.columns])
        columns = list(zip(*rows, strict=True))
        keys, event_text, arrival_text = columns[0], columns[1], columns[2]
        good = np.fromiter((_valid_key(key) for key in keys), dtype=bool, count=len(rows))
        event = _integers(event_text, good)
        stamped = zip(arrival_text, ids, strict=True)
        arrival = _integers([a if a is not None else i.split(b"-")[0] + b"000" for a, i in stamped], good)
        values = []
        for (_, kinds), text in zip(spec.columns, columns[3:], strict=True):
            given = np.fromiter(map(bool, text), dtype=bool, count=len(rows))
            if len(kinds) > 1:
                numbers = _floats([value or b"nan" for value in text], given, good)
            else:
                numbers = np.where(given, 1.0, np.nan)
            values.append(numbers)
        invalid = [entry_id for entry_id, ok in zip(ids, good.tolist(), strict=True) if not ok]
        if invalid:
            keep = good.nonzero()[0]
            ids = [ids[i] for i in keep.tolist()]
            keys = [keys[i] for i in keep.tolist()]
            event, arrival, values = event[keep], arrival[keep], [v[keep] for v in values]
        after_cut = arrival > cut
        on_time = after_cut & ((arrival - event) <= spec.lateness_us)
        covered = int(len(after_cut) - after_cut.sum())
        late = int(len(on_time) - on_time.sum()) - covered
        if late or covered:
            keep = on_time.nonzero()[0]
            keys = [keys[i] for i in keep.tolist()]
            event, arrival, values = event[keep], arrival[keep], [v[keep] for v in values]
        return cls(ids, invalid, late, covered, list(keys), event, arrival, values)

    def fold(self, spec: StreamSpec) -> _Folded:
        """Return the packed entity headers and bucket deltas, the entity keys and the newest event time."""
        if not self.keys:
            return _Folded(self.valid_ids, self.invalid, self.late, self.covered, b"", b"", [], "")
        step = spec.step_us
        index: dict[bytes, int] = {}
        entity = np.fromiter((index.setdefault(key, len(index)) for key in self.keys), np.int64, len(self.keys))
        bucket = -(-self.event // step)
        order = np.lexsort((bucket, entity))
        entity, bucket, event, arrival = entity[order], bucket[order], self.event[order], self.arrival[order]
        values = [v[order] for v in self.values]
        changed = np.empty(len(order), dtype=bool)
        changed[0] = True
        changed[1:] = (entity[1:] != entity[:-1]) | (bucket[1:] != bucket[:-1])
        starts = changed.nonzero()[0]
        group = np.cumsum(changed) - 1
        events = np.diff(np.append(starts, len(order)))
        record = [bucket[starts], events, np.maximum.reduceat(event, starts)]
        for (_, kinds), value in zip(spec.columns, values, strict=True):
            given = ~np.isnan(value)
            count = np.add.reduceat(given.astype(np.int64), starts)
            record.append(count)
            empty = count == 0
            for kind in kinds[1:]:
                if kind == "s":
                    record.append(np.where(empty, np.nan, np.add.reduceat(np.where(given, value, 0.0), starts)))
                elif kind == "n":
                    record.append(np.where(empty, np.nan, np.minimum.reduceat(np.where(given, value, np.inf), starts)))
                elif kind == "x":
                    record.append(np.where(empty, np.nan, np.maximum.reduceat(np.where(given, value, -np.inf), starts)))
                else:
                    greatest = np.lexsort((np.nan_to_num(value), arrival, event, given, group))
                    last = greatest[np.append(starts[1:], len(order)) - 1]
                    for part in (event, arrival, value):
                        record.append(np.where(empty, np.nan, part[last]))
        entity_starts = np.flatnonzero(np.append(True, entity[1:] != entity[:-1]))
        heads = [
            np.maximum.reduceat(arrival // step, entity_starts),
            np.maximum.reduceat(arrival, entity_starts),
            np.add.reduceat(changed.astype(np.int64), entity_starts),
        ]
        keys = list(index)
        ordered_keys = [keys[i] for i in entity[entity_starts].tolist()]
        newest = int(event.max())
        heads_packed, records_packed = _packed(heads), _packed(record)
        return _Folded(
            self.valid_ids, self.invalid, self.late, self.covered, heads_packed, records_packed, ordered_keys, newest
        )


def _valid_key(key: bytes | None) -> bool:
    """Return whether an entity key is given, non-empty and UTF-8."""
    if not key:
        return False
    try:
        key.decode()
    except UnicodeDecodeError:
        return False
    return True


def _integers(texts: Sequence[bytes | None], good: np.ndarray) -> np.ndarray:
    """Parse decimal integers (µs times); an entry whose text does not parse is marked not good."""
    try:
        return np.array(texts, dtype=np.bytes_).astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        parsed = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            try:
                parsed[i] = int(text)
            except (ValueError, TypeError, OverflowError):
                good[i] = False
        return parsed


def _floats(texts: list[bytes], given: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Parse decimal numbers ('nan' where no value is given); a given value that is not finite is not good."""
    try:
        numbers = np.array(texts, dtype=np.bytes_).astype(np.float64)
    except ValueError:
        numbers = np.full(len(texts), np.nan)
        for i, text in enumerate(texts):
            try:
                numbers[i] = float(text)
            except ValueError:
                good[i] = False
    good &= ~given | np.isfinite(numbers)
    return numbers


def _packed(columns: list[np.ndarray]) -> bytes:
    """Return the columns as rows of little-endian doubles."""
    return np.column_stack(columns).astype("<f8").tobytes()


def delta_width(spec: StreamSpec) -> int:
    """Return how many doubles one bucket's delta takes: bucket, events, newest, then each column's partials."""
    return 3 + sum(1 + sum(3 if kind == "l" else 1 for kind in kinds[1:]) for _, kinds in spec.columns)
