"""The integration tests share one stack (tests/conftest.py's session `triton` and `frontend`),
so under pytest-xdist they all run on one worker, in order: `make test` runs `-n 2 --dist
loadgroup`, and the other worker takes the unit tests meanwhile (they need no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("stack"))
