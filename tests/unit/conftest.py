"""The quick tier's rule, kept by the tests themselves: a unit test not marked `slow` starts no
subprocess (`make quick` runs only those, as the edit loop of under a minute). One that must is
marked `@pytest.mark.slow` (or its module `pytestmark = pytest.mark.slow`), as are those that
build or load a model, import vLLM, or take seconds."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(autouse=True)
def _quick_tests_start_no_process(request, monkeypatch):
    if request.node.get_closest_marker("slow") is None:

        def refuse(self, *args, **kwargs):
            raise AssertionError(
                f"{request.node.nodeid} starts a subprocess: mark it slow (make quick leaves those out)"
            )

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
