"""Shared pytest configuration and fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_central_support import fresh_database, ready_database

pytest_plugins = ["pytester"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated platform database on each engine (PostgreSQL: FORECOURT_PG_URL)."""
    gen = fresh_database(request.param, tmp_path)
    url = next(gen)
    ready_database(url).close()
    yield url
    gen.close()
