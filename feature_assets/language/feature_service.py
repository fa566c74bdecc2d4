"""Feature services: the named set of `view:feature` references one model consumes."""

from collections.abc import Sequence
from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError
from feature_assets.language.names import validate_name


@dataclass(frozen=True)
class FeatureReference:
    """One feature of one view, written `view:feature`."""

    view: str
    feature: str

    @classmethod
    def parse(cls, reference: str) -> "FeatureReference":
        """Return the reference spelled `view:feature`, or raise naming the malformed text."""
        view, sep, feature = reference.partition(":") if isinstance(reference, str) else ("", "", "")
        if not sep or not view or not feature:
            raise DefinitionError(f"feature reference {reference!r} must be written 'view:feature'")
        return cls(view, feature)

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


@dataclass(frozen=True)
class FeatureService:
    """A named list of feature references, the contract between the store and one model."""

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
