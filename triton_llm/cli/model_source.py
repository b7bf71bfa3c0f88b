"""Where make_repo's model comes from: a hub download, a local folder, and its transformers config.

Downloads go through huggingface_hub (HF_TOKEN and HF_ENDPOINT honoured, progress bars,
interrupted downloads resume), skipping weights no engine here loads. Every failure is an
`ArgumentError` naming the argument that caused it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("make_repo")

# Weights in other frameworks' formats, never loaded by vLLM or transformers.
NOT_PYTORCH = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*", "openvino/*", "coreml/*", "*.gguf"]
# Pickled PyTorch weights, skipped when the model also has safetensors.
PICKLED = ["*.bin", "*.pt", "*.pth"]


class ArgumentError(ValueError):
    """An argument that cannot be honoured for this model; the message starts with its name."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


def fetch(model_id: str, revision: str | None, download_dir: Path | None) -> tuple[Path, str]:
    """Download a hub model; (local folder, commit it was downloaded at)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id = model_id.removeprefix("hf://")
    try:
        info = HfApi().model_info(repo_id, revision=revision)  # token: HF_TOKEN or the saved login
    except RevisionNotFoundError:
        raise ArgumentError("--model_revision", f"{repo_id} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ArgumentError("--model_id", f"{repo_id} is not on the hub, or is private (set HF_TOKEN)") from None
    except HfHubHTTPError as exc:
        raise ArgumentError("--model_id", f"cannot reach the hub for {repo_id}: {exc}") from None
    files = [s.rfilename for s in info.siblings or []]
    ignore = NOT_PYTORCH + (PICKLED if any(f.endswith(".safetensors") for f in files) else [])
    logger.info("downloading %s at %s into %s", repo_id, info.sha, download_dir or "the hub cache")
    path = snapshot_download(repo_id, revision=info.sha, local_dir=download_dir, ignore_patterns=ignore)
    return Path(path), info.sha


def read_config(folder: Path, trust_remote_code: bool, argument: str) -> tuple[Any, bool]:
    """(transformers config, whether it is a sentence-transformers folder)."""
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise ArgumentError(argument, f"{folder} has no config.json: not a transformers model folder")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ValueError as exc:  # unknown model_type, or custom code not trusted
        raise ArgumentError(argument, f"cannot read {folder / 'config.json'}: {exc}") from None
    return config, (folder / "modules.json").is_file()


def model_path(folder: Path, repository: Path) -> str:
    """model.json's `model`: relative to `<name>/1/` inside the repository (it moves as one), else absolute."""
    # abspath, not resolve: a linked folder stays named by its link
    folder, repository = Path(os.path.abspath(folder)), Path(os.path.abspath(repository))
    if folder.is_relative_to(repository):
        return str(Path("..", "..", folder.relative_to(repository)))
    return str(folder)
