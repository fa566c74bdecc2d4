"""The Dagster code location: the demo feature repository with stores configured from the environment."""

from feature_assets.project import build_definitions
from feature_assets.views import repository

defs = build_definitions(repository)
