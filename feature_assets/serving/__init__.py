"""Serving every client: command lines over the stores and the Dagster instance."""
