"""The Dagster code location: the demo feature repository with stores configured from the environment."""

from feature_assets.demo.views import repository
from feature_assets.demo.views.training_sets import trip_completion
from feature_assets.orchestration.project import build_definitions

defs = build_definitions(repository, training_sets=[trip_completion])
