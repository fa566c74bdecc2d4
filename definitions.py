"""The Dagster code location: the demo feature repository with stores configured from the environment."""

from feature_assets.project import build_definitions
from feature_assets.views import repository
from feature_assets.views.training_sets import trip_completion

defs = build_definitions(repository, training_sets=[trip_completion])
