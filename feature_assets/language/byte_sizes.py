"""Parsing of memory sizes written as `512MiB`, `2GiB`, `4GB` or given as a number of bytes."""

import re

from feature_assets.language.errors import DefinitionError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_byte_size(value: str | int, what: str) -> int:
    """Return `value` as a positive number of bytes; strings look like `512MiB`, `2GiB` or `4GB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip().lower())) and match[2] in _UNITS:
        size = int(float(match[1]) * _UNITS[match[2]])
    else:
        raise DefinitionError(f"{what}: cannot read size {value!r}; write e.g. '512MiB', '2GiB', '4GB' or bytes")
    if size <= 0:
        raise DefinitionError(f"{what}: size must be positive, got {value!r}")
    return size
