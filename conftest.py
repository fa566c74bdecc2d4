"""Pytest plugins shared by every test: fixtures that start real servers once per session."""

pytest_plugins = ["tests.fixtures.redis_servers", "tests.fixtures.s3_server"]
