"""How `make test`'s two pytest-xdist workers (`-n 2 --dist loadgroup`) share the integration
tests: every test on the session's stack (tests/conftest.py's `triton` and what is built on it)
runs on one worker, in order, as one group; a module that starts its own servers instead keeps
its tests together (its module fixtures start once) and runs on whichever worker is free, beside
the unit tests, which need no server."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
SESSION_STACK = {"triton", "frontend", "test_repository"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in item.path.parents:
            continue
        uses_stack = SESSION_STACK & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.xdist_group("stack" if uses_stack else item.path.stem))
