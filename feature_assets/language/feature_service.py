"""Feature services: the named set of `view:feature` references one model consumes."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError
from feature_assets.language.names import validate_name

VERSIONED_VIEW = re.compile(r"(?P<view>[^@:]+)(?:@v(?P<version>[1-9][0-9]*))?")
"""A view as references name it: `view`, or `view@v<N>` for one version of it."""


def split_version(view: str) -> tuple[str, int | None] | None:
    """Return (name, version) of `view` or `view@v<N>` (version None when not given), or None when malformed."""
    match = VERSIONED_VIEW.fullmatch(view)
    if match is None:
        return None
    version = match.group("version")
    return match.group("view"), None if version is None else int(version)


@dataclass(frozen=True)
class FeatureReference:
    """One feature of one view, written `view:feature`, or `view@v<N>:feature` for version N of the view."""

    view: str
    feature: str
    version: int | None = None

    @classmethod
    def parse(cls, reference: str) -> "FeatureReference":
        """Return the reference spelled `view:feature` or `view@v<N>:feature`, or raise naming the malformed text."""
        view, sep, feature = reference.partition(":") if isinstance(reference, str) else ("", "", "")
        parts = split_version(view) if sep and feature else None
        if parts is None:
            raise DefinitionError(
                f"feature reference {reference!r} must be written 'view:feature' (or 'view@v<N>:feature' to read "
                "version N of the view)"
            )
        return cls(parts[0], feature, parts[1])

    @property
    def versioned_view(self) -> str:
        """Return the view part as written: `view`, or `view@v<N>` when the reference names a version."""
        return self.view if self.version is None else f"{self.view}@v{self.version}"

    def __str__(self) -> str:
        return f"{self.versioned_view}:{self.feature}"


@dataclass(frozen=True)
class FeatureService:
    """A named list of feature references, the contract between the store and one model.

    A reference may pin a version of its view (`view@v1:feature`); the repository checks that version exists.
    """

    name: str
    features: tuple[FeatureReference, ...]
    description: str = ""
    owner: str | None = None

    def __init__(self, name: str, features: Sequence[str], description: str = "", owner: str | None = None) -> None:
        validate_name(name, "FeatureService")
        if isinstance(features, str) or not features:
            raise DefinitionError(f"FeatureService {name!r}: features must be a non-empty list of 'view:feature'")
        references = tuple(FeatureReference.parse(f) for f in features)
        if len(set(references)) != len(references):
            raise DefinitionError(f"FeatureService {name!r}: a feature is listed twice")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "features", references)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "owner", owner)
