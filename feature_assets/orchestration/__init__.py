"""Dagster wiring: the only layer that defines assets, checks, sensors, schedules and jobs."""

from feature_assets.orchestration.project import build_definitions

__all__ = ["build_definitions"]
