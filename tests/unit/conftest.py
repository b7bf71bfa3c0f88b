"""The quick tier's rule, kept by the tests themselves: a unit test not marked `slow` starts no
subprocess (`make quick` runs only those, as the edit loop of about a minute). One that must is
marked `@pytest.mark.slow` (or its module `pytestmark = pytest.mark.slow`), as are those that
build or load a model, or take seconds.

A library that probes the machine while it is first imported (vLLM and torch may run a command)
is not the test's doing: a subprocess started during an import is let through, so the rule does
not depend on which test happens to import vLLM first.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _importing() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@pytest.fixture(autouse=True)
def _quick_tests_start_no_process(request, monkeypatch):
    if request.node.get_closest_marker("slow") is not None:
        return
    popen_init = subprocess.Popen.__init__

    def refuse(self, *args, **kwargs):
        if _importing():
            return popen_init(self, *args, **kwargs)
        raise AssertionError(f"{request.node.nodeid} starts a subprocess: mark it slow (make quick leaves those out)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
