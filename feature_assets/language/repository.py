"""The feature repository: every view and service of a project, checked together and looked up by name."""

from collections.abc import Sequence
from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureReference, FeatureService
from feature_assets.language.feature_view import FeatureView


@dataclass(frozen=True)
class ResolvedFeatures:
    """Requested features grouped by view, in request order."""

    views: tuple[FeatureView, ...]
    features: dict[str, tuple[str, ...]]


class FeatureRepository:
    """All feature views and services of a project, with unique names and valid references."""

    def __init__(self, views: Sequence[FeatureView], services: Sequence[FeatureService] = ()) -> None:
        self.views: dict[str, FeatureView] = {}
        for view in views:
            if view.name in self.views:
                raise DefinitionError(f"FeatureView {view.name!r} is defined twice; view names must be unique")
            self.views[view.name] = view
        entities = {}
        for view in views:
            for entity in view.entities:
                known = entities.setdefault(entity.name, entity)
                if known != entity:
                    raise DefinitionError(
                        f"Entity {entity.name!r} is defined twice with different join keys or dtypes "
                        f"(FeatureView {view.name!r}); define it once and share it"
                    )
        self.services: dict[str, FeatureService] = {}
        for service in services:
            if service.name in self.services:
                raise DefinitionError(f"FeatureService {service.name!r} is defined twice")
            self.resolve(service)
            self.services[service.name] = service

    def view(self, name: str) -> FeatureView:
        """Return the view called `name`, or raise naming the known views."""
        try:
            return self.views[name]
        except KeyError:
            raise FeatureReferenceError(f"unknown feature view {name!r}; known views: {sorted(self.views)}") from None

    def resolve(self, features: Sequence[str] | FeatureService) -> ResolvedFeatures:
        """Group `view:feature` references (or a service's) by view, checking every name exists."""
        references = (
            features.features
            if isinstance(features, FeatureService)
            else tuple(FeatureReference.parse(f) for f in ([features] if isinstance(features, str) else features))
        )
        if not references:
            raise FeatureReferenceError("no features requested; pass 'view:feature' references or a FeatureService")
        grouped: dict[str, list[str]] = {}
        for reference in references:
            view = self.view(reference.view)
            if reference.feature not in view.fields_by_name:
                raise FeatureReferenceError(
                    f"unknown feature {reference.feature!r} in view {view.name!r}; "
                    f"its features are {list(view.feature_names)}"
                )
            requested = grouped.setdefault(view.name, [])
            if reference.feature not in requested:
                requested.append(reference.feature)
        return ResolvedFeatures(
            views=tuple(self.views[name] for name in grouped),
            features={name: tuple(names) for name, names in grouped.items()},
        )


def load_repository(import_path: str) -> FeatureRepository:
    """Import and return the FeatureRepository at `module:attribute`."""
    import importlib

    module_name, _, attribute = import_path.partition(":")
    repository = getattr(importlib.import_module(module_name), attribute or "repository", None)
    if not isinstance(repository, FeatureRepository):
        raise DefinitionError(f"{import_path!r} does not name a FeatureRepository (write 'module:attribute')")
    return repository
