"""The feature repository: every view and service of a project, checked together and looked up by name."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureReference, FeatureService, split_version
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.on_demand import OnDemandFeatureView


@dataclass(frozen=True)
class ResolvedFeatures:
    """Requested features grouped by view version, in request order, with the on-demand views they need.

    `views` are the feature views to read and `keys` their keys, in the same order: a current view's key is its
    name, a previous version's is `name@v<N>`. `features` holds what to read per key: the requested features, then
    the inputs of the requested on-demand views; `inputs_only` names the (key, feature) pairs read only as inputs,
    which no answer shows. `requested` lists the (key, feature) pairs the answer shows, in request order (on-demand
    features under the on-demand view's name).
    """

    views: tuple[FeatureView, ...]
    keys: tuple[str, ...]
    features: dict[str, tuple[str, ...]]
    on_demand: tuple[OnDemandFeatureView, ...] = ()
    on_demand_features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inputs_only: frozenset[tuple[str, str]] = frozenset()
    requested: tuple[tuple[str, str], ...] = ()

    def key(self, view: FeatureView) -> str:
        """Return the key of `view` (one of `views`) in `features`."""
        for candidate, key in zip(self.views, self.keys, strict=True):
            if candidate is view:
                return key
        raise FeatureReferenceError(f"FeatureView {view.name!r} v{view.version} is not among the resolved views")

    def shown(self, view: FeatureView | str) -> tuple[str, ...]:
        """Return the features of a resolved feature view (or of the view with that key) that the answer shows."""
        key = view if isinstance(view, str) else self.key(view)
        return tuple(f for f in self.features[key] if (key, f) not in self.inputs_only)


class FeatureRepository:
    """All feature views and services of a project, with unique names and valid references.

    `previous_versions` holds older versions of current views (same name, lower `version`) that still serve side
    by side with the current one: reference them as `view@v<N>:feature` (a service may pin them the same way).
    They are not assets any more: nothing computes or publishes them, so online they serve what they last
    published until their ttl expires it, and offline their partitions under `<root>/<view>/v<N>/` stay readable
    by `get_historical_features`. On-demand views read current versions only. To drop a previous version, run
    `feature-store retire VIEW --version N` (online keys, and with `--offline` its partitions), then remove it
    from `previous_versions`.
    """

    def __init__(
        self,
        views: Sequence[FeatureView],
        services: Sequence[FeatureService] = (),
        on_demand_views: Sequence[OnDemandFeatureView] = (),
        previous_versions: Sequence[FeatureView] = (),
    ) -> None:
        self.views: dict[str, FeatureView] = {}
        for view in views:
            if view.name in self.views:
                raise DefinitionError(f"FeatureView {view.name!r} is defined twice; view names must be unique")
            self.views[view.name] = view
        self.previous_versions: dict[str, dict[int, FeatureView]] = self._check_previous(previous_versions)
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
                        "repository; add it to the views (on-demand views read current versions only)"
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

    def _check_previous(self, previous_versions: Sequence[FeatureView]) -> dict[str, dict[int, FeatureView]]:
        """Return previous versions by name and version (ascending), each checked against the current view."""
        found: dict[str, dict[int, FeatureView]] = {}
        for view in previous_versions:
            if not isinstance(view, FeatureView):
                raise DefinitionError(f"previous_versions must hold FeatureView objects, got {view!r}")
            where = f"previous version v{view.version} of FeatureView {view.name!r}"
            current = self.views.get(view.name)
            if current is None:
                raise DefinitionError(
                    f"{where}: no current view is called {view.name!r}; add the current view to the views, "
                    "or drop this version from previous_versions"
                )
            if view.version >= current.version:
                raise DefinitionError(
                    f"{where}: the current view is v{current.version}; a previous version must be lower, so "
                    "bump the current view's version (or drop this one from previous_versions)"
                )
            versions = found.setdefault(view.name, {})
            if view.version in versions:
                raise DefinitionError(f"{where} is listed twice in previous_versions; keep one")
            versions[view.version] = view
        return {name: dict(sorted(versions.items())) for name, versions in found.items()}

    def versions(self, name: str) -> dict[int, FeatureView]:
        """Return every version of the view called `name`, previous ones and the current one, in ascending order."""
        current = self.view(name)
        return {**self.previous_versions.get(current.name, {}), current.version: current}

    def view(self, name: str) -> FeatureView:
        """Return the view called `name` (its current version), or version N of it for `name@v<N>`."""
        parts = split_version(name) if isinstance(name, str) else None
        if parts is None:
            raise FeatureReferenceError(f"feature view {name!r} must be written 'view' or 'view@v<N>'")
        view_name, version = parts
        current = self.views.get(view_name)
        if current is None:
            known = sorted([*self.views, *self.on_demand_views])
            raise FeatureReferenceError(f"unknown feature view {view_name!r}; known views: {known}")
        if version is None or version == current.version:
            return current
        previous = self.previous_versions.get(view_name, {}).get(version)
        if previous is None:
            raise FeatureReferenceError(
                f"FeatureView {view_name!r} has no version {version}; its versions are "
                f"{list(self.versions(view_name))} (older ones are listed in the repository's previous_versions)"
            )
        return previous

    def key(self, view: FeatureView) -> str:
        """Return how results name `view`: its name when it is the current version, else `name@v<N>`."""
        return view.name if self.views.get(view.name) is view else f"{view.name}@v{view.version}"

    def resolve(self, features: Sequence[str] | FeatureService) -> ResolvedFeatures:
        """Group `view:feature` and `view@v<N>:feature` references (or a service's) by view version, checking names."""
        references = (
            features.features
            if isinstance(features, FeatureService)
            else tuple(FeatureReference.parse(f) for f in ([features] if isinstance(features, str) else features))
        )
        if not references:
            raise FeatureReferenceError("no features requested; pass 'view:feature' references or a FeatureService")
        views: dict[str, FeatureView] = {}
        grouped: dict[str, list[str]] = {}
        on_demand: dict[str, list[str]] = {}
        requested: dict[tuple[str, str], None] = {}
        for reference in references:
            if reference.view in self.on_demand_views:
                view = self.on_demand_views[reference.view]
                if reference.version is not None:
                    raise FeatureReferenceError(
                        f"on-demand view {view.name!r} has no versions; write '{view.name}:{reference.feature}'"
                    )
                key = view.name
                wanted = on_demand.setdefault(key, [])
            else:
                view = self.view(reference.versioned_view)
                key = self.key(view)
                views[key] = view
                wanted = grouped.setdefault(key, [])
            if reference.feature not in view.fields_by_name:
                raise FeatureReferenceError(
                    f"unknown feature {reference.feature!r} in view {key!r}; "
                    f"its features are {list(view.feature_names)}"
                )
            if reference.feature not in wanted:
                wanted.append(reference.feature)
            requested[key, reference.feature] = None
        inputs_only = set()
        for name in on_demand:
            for source in self.on_demand_views[name].source_views:
                views[source.name] = source
                fetched = grouped.setdefault(source.name, [])
                for feature in source.feature_names:
                    if feature not in fetched:
                        fetched.append(feature)
                        inputs_only.add((source.name, feature))
        return ResolvedFeatures(
            views=tuple(views[key] for key in grouped),
            keys=tuple(grouped),
            features={key: tuple(names) for key, names in grouped.items()},
            on_demand=tuple(self.on_demand_views[name] for name in on_demand),
            on_demand_features={name: tuple(names) for name, names in on_demand.items()},
            inputs_only=frozenset(inputs_only),
            requested=tuple(requested),
        )


def load_repository(import_path: str) -> FeatureRepository:
    """Import and return the FeatureRepository at `module:attribute`."""
    import importlib

    module_name, _, attribute = import_path.partition(":")
    repository = getattr(importlib.import_module(module_name), attribute or "repository", None)
    if not isinstance(repository, FeatureRepository):
        raise DefinitionError(f"{import_path!r} does not name a FeatureRepository (write 'module:attribute')")
    return repository
