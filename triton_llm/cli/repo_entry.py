"""A Triton model repository entry as make_repo writes it: `config.pbtxt`, `1/model.json`, `1/model.py`
(and `1/chat_template.jinja` when it was given one).

The templates are the demo entries' own (tests/unit/cli/test_make_repo.py keeps them equal):
`model.py` only imports the runner the task needs, `config.pbtxt` holds the few directives
the runner does not fill in itself, and model.json the settings (docs/settings.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triton_llm.tasks import ENCODER_TASKS, Task

# A chat template given to make_repo, next to model.json, which names it relative to itself.
CHAT_TEMPLATE_FILE = "chat_template.jinja"

MODEL_PY = """\
# {what}; everything lives in the triton_llm package (docs/protocol.md).
from {runner} import TritonPythonModel  # noqa: F401
"""

GENERATION_CONFIG = """\
# {description}
# Written by `triton-llm make-repo`. Inputs and outputs are filled in by the model's
# auto_complete_config (docs/protocol.md); engine settings are in 1/model.json.
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}

# One engine per instance; it batches the requests of all clients itself. More instances
# (--instance-count) are more engines, each with its own weights and KV cache.
instance_group [{{ count: {count}, kind: {kind} }}]
"""

ENCODER_CONFIG = """\
# {description}
# Written by `triton-llm make-repo`. Each text is one row of the batch dimension;
# Triton's dynamic batcher gathers the requests queued while a batch runs into one forward
# pass. Inputs and outputs are filled in by the model's auto_complete_config
# (docs/protocol.md); model settings are in 1/model.json.
backend: "python"
max_batch_size: {max_batch_size}
# Load shedding: a request that finds this many waiting is refused at once (UNAVAILABLE
# "Exceeds maximum queue size", a 429 with Retry-After through the frontend).
dynamic_batching {{ default_queue_policy {{ max_queue_size: {max_queue_size} }} }}
instance_group [{{ count: {count}, kind: {kind} }}]
"""


@dataclass
class Entry:
    """A repository entry, checked and ready to write."""

    name: str
    task: Task
    backend: str
    settings: dict[str, Any]
    runner: str
    config_pbtxt: str
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # more files next to model.json: name -> text


def write(entry: Entry, repository: Path) -> Path:
    """Write the entry's files (over an existing entry's: a template it no longer has goes)."""
    root = repository / entry.name
    version = root / "1"
    version.mkdir(parents=True, exist_ok=True)
    (root / "config.pbtxt").write_text(entry.config_pbtxt)
    (version / "model.json").write_text(json.dumps(entry.settings, indent=2) + "\n")
    what = "An embedding / encoder-task model" if entry.task in ENCODER_TASKS else "A generation model"
    (version / "model.py").write_text(MODEL_PY.format(what=what, runner=entry.runner))
    for name, text in entry.files.items():
        (version / name).write_text(text, encoding="utf-8")
    if CHAT_TEMPLATE_FILE not in entry.files:
        (version / CHAT_TEMPLATE_FILE).unlink(missing_ok=True)
    return root
