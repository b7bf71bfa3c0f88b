"""Marks every test that runs on the session's stack (tests/conftest.py's `triton`, and what is
built on it) `stack`. `make test` (tools/test.sh) runs those in one pytest process, in order, and
everything else in a second process beside it: the unit tests, which need no server, and the
modules that start servers of their own (images on transformers, tracing, ...). Stacks of their
own that are heavy (lifecycle, LoRA, scale) are tiers of their own, which `make test` leaves out.
Two processes, not pytest-xdist groups: xdist 3.8's `loadgroup` sets a node id that pytest 9 no
longer reads, so its groups are silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
SESSION_STACK = {"triton", "frontend", "test_repository"}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the mark
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in item.path.parents and SESSION_STACK & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)
