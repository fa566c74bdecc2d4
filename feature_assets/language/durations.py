"""Parsing of durations written as `30m`, `1h`, `7d` or given as timedelta."""

import re
from datetime import timedelta

from feature_assets.language.errors import DefinitionError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(value: str | timedelta, what: str) -> timedelta:
    """Return `value` as a positive timedelta; strings look like `15m`, `1h`, `7d`, `2w`."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        raise DefinitionError(f"{what}: cannot read duration {value!r}; write e.g. '30m', '1h', '7d' or a timedelta")
    if duration <= timedelta(0):
        raise DefinitionError(f"{what}: duration must be positive, got {value!r}")
    return duration


def format_duration(duration: timedelta) -> str:
    """Return the shortest `<n><unit>` spelling of a duration, e.g. `7d` or `90m`."""
    seconds = int(duration.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
