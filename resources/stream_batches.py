"""Batches of stream entries folded into per-entity, per-bucket partial aggregates: the apply script's arguments.

A worker parses each entry once, here: malformed entries are left out (they stay pending and reach the dead-letter
stream after too many deliveries), late ones are only counted, and the others are folded into one delta per
(entity, bucket): events, newest event time and, per column, count, sum, min, max and last (event, arrival, value).
The apply script merges the deltas into the stored tiles only if every entry of the batch is still pending, and
acknowledges them in the same step.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from feature_assets.language.feature_view import FeatureView
from resources.stream_keys import column_kinds

Entry = tuple[bytes, Sequence[bytes] | Mapping[bytes, bytes] | None]
_ONE_MICROSECOND = timedelta(microseconds=1)


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


@dataclass
class Fold:
    """A folded batch: the IDs to acknowledge, the apply script's arguments after them, and the invalid entries."""

    ids: list[bytes]
    arguments: list[bytes | str | int]
    invalid: list[bytes]
    events: int


def fold_entries(spec: StreamSpec, entries: Sequence[Entry]) -> Fold:
    """Fold one partition's entries (ascending IDs, fields as a flat list or a mapping; None when deleted)."""
    step, lateness = spec.step_us, spec.lateness_us
    names = [name for name, _ in spec.columns]
    numeric = [len(kinds) > 1 for _, kinds in spec.columns]
    ids: list[bytes] = []
    invalid: list[bytes] = []
    late = missing = 0
    newest_event = -1
    # entity key -> [arrival step, arrival, {bucket: [events, newest, per column [count, sum, min, max, last]]}]
    entities: dict[str, list] = {}
    for entry_id, raw in entries:
        if raw is None:
            ids.append(entry_id)
            missing += 1
            continue
        fields = raw if isinstance(raw, Mapping) else dict(zip(raw[::2], raw[1::2], strict=True))
        try:
            key = fields[b"k"].decode()
            event = int(fields[b"t"])
            stamped = fields.get(b"a")
            arrival = int(stamped) if stamped is not None else int(entry_id.split(b"-")[0]) * 1000
            values = [fields.get(name) or None for name in names]
            for index, value in enumerate(values):
                if value is not None and numeric[index]:
                    number = float(value)
                    if not math.isfinite(number):
                        raise ValueError(value)
                    values[index] = number
        except (KeyError, ValueError, UnicodeDecodeError):
            invalid.append(entry_id)
            continue
        if not key:
            invalid.append(entry_id)
            continue
        ids.append(entry_id)
        if arrival - event > lateness:
            late += 1
            continue
        arrival_step = arrival // step
        entity = entities.get(key)
        if entity is None:
            entity = entities[key] = [arrival_step, arrival, {}]
        else:
            if arrival_step > entity[0]:
                entity[0] = arrival_step
            if arrival > entity[1]:
                entity[1] = arrival
        index = -(-event // step)
        bucket = entity[2].get(index)
        if bucket is None:
            bucket = entity[2][index] = [0, event, [[0, 0.0, None, None, None] for _ in names]]
        bucket[0] += 1
        if event > bucket[1]:
            bucket[1] = event
        if event > newest_event:
            newest_event = event
        for partial, value in zip(bucket[2], values, strict=True):
            if value is None:
                continue
            partial[0] += 1
            if value.__class__ is float:
                partial[1] += value
                if partial[2] is None or value < partial[2]:
                    partial[2] = value
                if partial[3] is None or value > partial[3]:
                    partial[3] = value
                candidate = (event, arrival, value)
                if partial[4] is None or candidate > partial[4]:
                    partial[4] = candidate
    arguments: list[bytes | str | int] = [late, len(invalid), missing, "" if newest_event < 0 else newest_event]
    arguments.append(len(entities))
    for key, (arrival_step, arrival, buckets) in entities.items():
        arguments += [key, arrival_step, arrival, len(buckets)]
        for index, (events, newest, partials) in buckets.items():
            arguments += [index, events, newest]
            for (_, kinds), partial in zip(spec.columns, partials, strict=True):
                arguments += _encode_partial(kinds, partial)
    return Fold(ids, arguments, invalid, len(ids) - missing)


def _encode_partial(kinds: tuple[str, ...], partial: list) -> list[bytes | str | int]:
    """Return one column's delta: its count, then per kept partial its value ('' when no value), last as 3 args."""
    count, total, low, high, last = partial
    encoded: list[bytes | str | int] = [count]
    for kind in kinds[1:]:
        if kind == "l":
            encoded += [last[0], last[1], repr(last[2])] if last is not None else ["", "", ""]
        elif count == 0:
            encoded.append("")
        else:
            encoded.append(repr(total if kind == "s" else low if kind == "n" else high))
    return encoded


def delta_width(spec: StreamSpec) -> int:
    """Return how many arguments one bucket's delta takes: bucket, events, newest, then each column's partials."""
    return 3 + sum(1 + sum(3 if kind == "l" else 1 for kind in kinds[1:]) for _, kinds in spec.columns)
