"""Online reads over HTTP in Feast's JSON shape: the request resolved once per shape, the answer column by column.

The answer is `{"metadata": {"feature_names": [...]}, "results": [{"values", "statuses", "event_timestamps"}]}` with
`results[i]` describing `feature_names[i]` and one entry per entity row: join keys first (status PRESENT, the epoch
as time, as Feast does), then the features in request order. Statuses are PRESENT, NOT_FOUND and OUTSIDE_MAX_AGE (a
value older than its view's ttl); times are RFC 3339 in UTC with a `Z`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from feature_assets.language.errors import FeatureReferenceError
from feature_assets.language.feature_service import FeatureReference, FeatureService
from feature_assets.language.repository import FeatureRepository
from resources.online_response import EXPIRED, NOT_FOUND, PRESENT, OnlineResponse

STATUS_NAMES = {PRESENT: "PRESENT", NOT_FOUND: "NOT_FOUND", EXPIRED: "OUTSIDE_MAX_AGE"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SHAPE_CACHE_SIZE = 1024
TIMESTAMP_SUFFIX = "__event_timestamp"


@dataclass(frozen=True)
class ReadShape:
    """A feature list or service resolved for serving: what to read, who must be granted what, how to answer."""

    features: Sequence[str] | FeatureService
    service: str | None
    references: tuple[str, ...]
    views: tuple[str, ...]
    join_keys: tuple[str, ...]
    columns: tuple[tuple[str, str | None], ...]
    """Each answered feature column with its view's event time column in the store's response (None: on demand)."""
    feature_names: list[str]
    """The answer's column names: join keys, then features."""


class ReadShapes:
    """Read shapes of a repository, cached per (features or service, full_feature_names)."""

    def __init__(self, repository: FeatureRepository) -> None:
        self.repository = repository
        self._cache: dict[tuple[object, ...], ReadShape] = {}

    def get(self, features: tuple[str, ...] | None, service: str | None, full_feature_names: bool) -> ReadShape:
        """Return the shape of a request, resolving and checking its names on first use."""
        cache_key = (features, service, full_feature_names)
        shape = self._cache.get(cache_key)
        if shape is None:
            if len(self._cache) >= SHAPE_CACHE_SIZE:
                self._cache.clear()
            shape = self._resolve(features, service, full_feature_names)
            self._cache[cache_key] = shape
        return shape

    def _resolve(self, features: tuple[str, ...] | None, service: str | None, full_feature_names: bool) -> ReadShape:
        repository = self.repository
        selected: Sequence[str] | FeatureService
        if service is None:
            selected = list(features or ())
            references = tuple(FeatureReference.parse(f) for f in selected)
        elif service in repository.services:
            selected = repository.services[service]
            references = selected.features
        else:
            known = sorted(repository.services)
            raise FeatureReferenceError(f"unknown feature service {service!r}; known services: {known}")
        resolved = repository.resolve(selected)
        feature_view_keys = set(resolved.keys)
        columns: dict[str, str | None] = {}
        for key, feature in resolved.requested:
            name = f"{key}__{feature}" if full_feature_names else feature
            columns.setdefault(name, f"{key}{TIMESTAMP_SUFFIX}" if key in feature_view_keys else None)
        join_keys = tuple(dict.fromkeys(key for view in resolved.views for key in view.join_keys))
        return ReadShape(
            features=selected,
            service=service,
            references=tuple(str(reference) for reference in references),
            views=tuple(dict.fromkeys(reference.view for reference in references)),
            join_keys=join_keys,
            columns=tuple(columns.items()),
            feature_names=[*join_keys, *columns],
        )


def feast_answer(response: OnlineResponse, shape: ReadShape, newest: dict[str, datetime]) -> bytes:
    """Return the JSON answer of an online read; fill `newest` with each view's newest event time answered.

    `newest` is keyed by the response's event time column (`<view>__event_timestamp`).
    """
    values, statuses = response.columns, response.statuses
    rows = len(values[shape.join_keys[0]]) if shape.join_keys else 0
    all_present, epochs = ["PRESENT"] * rows, [EPOCH] * rows
    results = [{"values": values[key], "statuses": all_present, "event_timestamps": epochs} for key in shape.join_keys]
    times: dict[str | None, list[datetime]] = {None: epochs}
    for column, timestamp_column in shape.columns:
        column_times = times.get(timestamp_column)
        if column_times is None:
            raw = values.get(timestamp_column, epochs)
            if None in raw:
                seen = [moment for moment in raw if moment is not None]
                column_times = [EPOCH if moment is None else moment for moment in raw]
            else:
                seen = column_times = raw
            if seen and raw is not epochs:
                newest[timestamp_column] = max(seen)
            times[timestamp_column] = column_times
        column_statuses = statuses[column]
        if column_statuses.count(PRESENT) != rows:
            column_statuses = [STATUS_NAMES[status] for status in column_statuses]
        else:
            column_statuses = all_present
        results.append({"values": values[column], "statuses": column_statuses, "event_timestamps": column_times})
    answer = {"metadata": {"feature_names": shape.feature_names}, "results": results}
    return orjson.dumps(answer, option=orjson.OPT_UTC_Z)
