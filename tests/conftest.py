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


@pytest.fixture(autouse=True, scope="session")
def _manifest_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs the tests sign (manifest.json) use a throw-away key, not the user's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORECOURT_MANIFEST_KEY",
                  str(tmp_path_factory.mktemp("manifest-key") / "manifest-key.pem"))
        yield
