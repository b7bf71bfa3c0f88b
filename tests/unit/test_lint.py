import importlib.util
import subprocess
import sys

import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff comes with the test extra")
def test_ruff_is_clean():
    cmd = [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
