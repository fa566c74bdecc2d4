"""The repository's views described as JSON for `GET /views`: features, dtypes, entities, ttl, version, owner, tags."""

from feature_assets.language.durations import format_duration
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.on_demand import OnDemandFeatureView
from feature_assets.language.repository import FeatureRepository


def describe_view(view: FeatureView | OnDemandFeatureView) -> dict[str, object]:
    """Return one view as a JSON-ready mapping."""
    features = [{"name": f.name, "dtype": str(f.dtype), "description": f.description} for f in view.schema]
    if isinstance(view, OnDemandFeatureView):
        return {
            "name": view.name,
            "kind": "on_demand",
            "features": features,
            "sources": [source.name for source in view.sources],
            "request_fields": [{"name": f.name, "dtype": str(f.dtype)} for f in view.request_fields],
            "description": view.description,
        }
    return {
        "name": view.name,
        "kind": "stream" if view.streaming else "push" if view.takes_pushes else "batch",
        "features": features,
        "entities": [
            {"name": entity.name, "join_keys": {key: str(entity.key_dtypes[key]) for key in entity.join_keys}}
            for entity in view.entities
        ],
        "ttl": None if view.ttl is None else format_duration(view.ttl),
        "online": view.online,
        "version": view.version,
        "owner": view.owner,
        "tags": dict(view.tags),
        "description": view.description,
        "source": view.source.name,
        "start_date": view.start_date.isoformat(),
    }


def describe_views(repository: FeatureRepository) -> list[dict[str, object]]:
    """Return every feature view, then every on-demand view, by name."""
    views = sorted(repository.views.values(), key=lambda view: view.name)
    on_demand = sorted(repository.on_demand_views.values(), key=lambda view: view.name)
    return [describe_view(view) for view in [*views, *on_demand]]


def find_view(repository: FeatureRepository, name: str) -> FeatureView | OnDemandFeatureView:
    """Return the feature view or on-demand view called `name`, or raise naming the known views."""
    return repository.on_demand_views.get(name) or repository.view(name)
