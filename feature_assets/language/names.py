"""Validation of the names users give to entities, views, features and services."""

import re

from feature_assets.language.errors import DefinitionError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_COLUMNS = frozenset({"event_timestamp", "created_timestamp"})


def validate_name(name: object, what: str) -> str:
    """Return `name` if it is a valid identifier, else raise a DefinitionError naming `what`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DefinitionError(
            f"{what}: invalid name {name!r}; names must match [a-z][a-z0-9_]* "
            "(lower case letter first, then lower case letters, digits or underscores)"
        )
    return name
