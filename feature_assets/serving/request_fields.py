"""Fields of JSON request bodies, checked: a malformed body is a 422 naming the field and what was expected."""

from collections.abc import Mapping
from datetime import UTC, date, datetime

import orjson

from feature_assets.serving.http_errors import HttpError


def json_object(body: bytes) -> dict[str, object]:
    """Return the body parsed as a JSON object."""
    if not body:
        raise HttpError(422, "the request body is empty; send a JSON object")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HttpError(422, f"the request body is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise HttpError(422, f"the request body must be a JSON object, got {type(parsed).__name__}")
    return parsed


def flag(body: Mapping[str, object], name: str, default: bool = False) -> bool:
    """Return the boolean field `name` (default when absent)."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise HttpError(422, f"field {name!r} must be true or false, got {value!r}")
    return value


def text(body: Mapping[str, object], name: str, default: str | None = None) -> str:
    """Return the string field `name`; required unless a default is given."""
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        expected = "a non-empty string" + ("" if default is None else f" (default {default!r})")
        raise HttpError(422, f"field {name!r} must be {expected}, got {value!r}")
    return value


def names(body: Mapping[str, object], name: str) -> list[str] | None:
    """Return the list-of-strings field `name`, or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HttpError(422, f"field {name!r} must be a list of strings, got {value!r}")
    return value


def feature_selection(body: Mapping[str, object]) -> tuple[tuple[str, ...] | None, str | None]:
    """Return the requested `features` ('view:feature' strings) or the `feature_service` name: exactly one."""
    features, service = body.get("features"), body.get("feature_service")
    if service is not None:
        if features:
            raise HttpError(422, "give either 'features' or 'feature_service', not both")
        if not isinstance(service, str) or not service:
            raise HttpError(422, f"field 'feature_service' must be a service name, got {service!r}")
        return None, service
    if not isinstance(features, list) or not features or not all(isinstance(item, str) for item in features):
        raise HttpError(
            422, "field 'features' must be a non-empty list of 'view:feature' strings (or give 'feature_service')"
        )
    return tuple(features), None


def columns(body: Mapping[str, object], name: str, *, required: bool = True) -> dict[str, list[object]]:
    """Return the field `name` as columns: an object of equally long lists, e.g. {"driver_id": [1, 2]}."""
    value = body.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or not value:
        example = '{"driver_id": [1, 2]}'
        raise HttpError(422, f"field {name!r} must be an object of column name to a list of values, e.g. {example}")
    lengths = set()
    for column, values in value.items():
        if not isinstance(values, list):
            raise HttpError(422, f"field {name!r}: column {column!r} must be a list of values, got {values!r}")
        lengths.add(len(values))
    if len(lengths) > 1:
        counts = {column: len(values) for column, values in value.items()}
        raise HttpError(422, f"field {name!r}: columns have different lengths {counts}; give one value per row")
    return value


def entity_columns(body: Mapping[str, object]) -> dict[str, list[object]]:
    """Return `entities` merged with `request_context` (request values of on-demand views, as Feast's Go server)."""
    entities = columns(body, "entities")
    context = columns(body, "request_context", required=False)
    if context:
        rows = len(next(iter(entities.values())))
        for column, values in context.items():
            if len(values) != rows:
                raise HttpError(
                    422, f"field 'request_context': column {column!r} has {len(values)} values for {rows} entity rows"
                )
        entities = {**entities, **context}
    return entities


def parse_timestamp(value: object, where: str) -> datetime:
    """Return an RFC 3339 / ISO 8601 time (naive means UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise HttpError(422, f"{where}: expected an ISO 8601 time string such as '2025-01-07T09:00:00Z', got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(422, f"{where}: {value!r} is not an ISO 8601 time such as '2025-01-07T09:00:00Z'") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_day(value: object, where: str) -> date:
    """Return an ISO date, or the UTC day of an ISO time."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    return parse_timestamp(value, where).date()
