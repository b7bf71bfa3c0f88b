"""How a model stub whose engine died asks `triton-llm serve` to reload its model.

serve makes a folder and names it in the stubs' environment (`ENV`); a stub whose engine died
writes a file named for its model there (`report`, generation/runner.py), and serve's supervisor
reloads that model (cli/supervisor.py). Shared by both sides, so that generation code does not
import the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TRITON_LLM_DEAD_ENGINES_DIR"  # the folder a stub names its dead engine's model in


def report(model_name: str, reason: str) -> bool:
    """Tell serve that this model's engine died; False when not under serve (or the folder is gone)."""
    folder = os.environ.get(ENV)
    if not folder:
        return False
    (Path(folder) / model_name).write_text(reason)  # OSError: the caller's to handle
    return True
