"""Settings tests read a clean environment: only what each test sets (plus the test marker)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from app.settings import get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PASSGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PASSGATE_ENVIRONMENT", "test")
    # No .env in the working directory, and a database file that lands in tmp_path.
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
