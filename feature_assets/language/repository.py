"""The feature repository: every view and service of a project, checked together and looked up by name."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureReference, FeatureService
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.on_demand import OnDemandFeatureView


@dataclass(frozen=True)
class ResolvedFeatures:
    """Requested features grouped by view, in request order, with the on-demand views they need.

    `features` holds what to read per feature view: the requested features, then the inputs of the requested
    on-demand views; `inputs_only` names the (view, feature) pairs read only as inputs, which no answer shows.
    """

    views: tuple[FeatureView, ...]
    features: dict[str, tuple[str, ...]]
    on_demand: tuple[OnDemandFeatureView, ...] = ()
    on_demand_features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inputs_only: frozenset[tuple[str, str]] = frozenset()

    def shown(self, view: str) -> tuple[str, ...]:
        """Return the features of feature view `view` that the answer shows."""
        return tuple(f for f in self.features[view] if (view, f) not in self.inputs_only)


class FeatureRepository:
    """All feature views and services of a project, with unique names and valid references."""

    def __init__(
        self,
        views: Sequence[FeatureView],
        services: Sequence[FeatureService] = (),
        on_demand_views: Sequence[OnDemandFeatureView] = (),
    ) -> None:
        self.views: dict[str, FeatureView] = {}
        for view in views:
            if view.name in self.views:
                raise DefinitionError(f"FeatureView {view.name!r} is defined twice; view names must be unique")
            self.views[view.name] = view
        self.on_demand_views: dict[str, OnDemandFeatureView] = {}
        for on_demand in on_demand_views:
            if on_demand.name in self.views or on_demand.name in self.on_demand_views:
                raise DefinitionError(
                    f"OnDemandFeatureView {on_demand.name!r}: the name is taken; view names must be unique"
                )
            for source in on_demand.source_views:
                if self.views.get(source.name) is not source:
                    raise DefinitionError(
                        f"OnDemandFeatureView {on_demand.name!r}: its source view {source.name!r} is not in the "
                        "repository; add it to the views"
                    )
            self.on_demand_views[on_demand.name] = on_demand
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
            known = sorted([*self.views, *self.on_demand_views])
            raise FeatureReferenceError(f"unknown feature view {name!r}; known views: {known}") from None

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
        on_demand: dict[str, list[str]] = {}
        for reference in references:
            if reference.view in self.on_demand_views:
                view = self.on_demand_views[reference.view]
                requested = on_demand.setdefault(view.name, [])
            else:
                view = self.view(reference.view)
                requested = grouped.setdefault(view.name, [])
            if reference.feature not in view.fields_by_name:
                raise FeatureReferenceError(
                    f"unknown feature {reference.feature!r} in view {view.name!r}; "
                    f"its features are {list(view.feature_names)}"
                )
            if reference.feature not in requested:
                requested.append(reference.feature)
        inputs_only = set()
        for name in on_demand:
            for source in self.on_demand_views[name].source_views:
                fetched = grouped.setdefault(source.name, [])
                for feature in source.feature_names:
                    if feature not in fetched:
                        fetched.append(feature)
                        inputs_only.add((source.name, feature))
        return ResolvedFeatures(
            views=tuple(self.views[name] for name in grouped),
            features={name: tuple(names) for name, names in grouped.items()},
            on_demand=tuple(self.on_demand_views[name] for name in on_demand),
            on_demand_features={name: tuple(names) for name, names in on_demand.items()},
            inputs_only=frozenset(inputs_only),
        )


def load_repository(import_path: str) -> FeatureRepository:
    """Import and return the FeatureRepository at `module:attribute`."""
    import importlib

    module_name, _, attribute = import_path.partition(":")
    repository = getattr(importlib.import_module(module_name), attribute or "repository", None)
    if not isinstance(repository, FeatureRepository):
        raise DefinitionError(f"{import_path!r} does not name a FeatureRepository (write 'module:attribute')")
    return repository
