"""Pytest plugins shared by every test: real servers started once per session, a Dagster instance per test."""

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.redis_servers",
    "tests.fixtures.s3_server",
    "tests.fixtures.dagster_instance",
    "tests.fixtures.alert_endpoint",
    "tests.fixtures.dagster_dev",
    "tests.fixtures.postgres_server",
]
