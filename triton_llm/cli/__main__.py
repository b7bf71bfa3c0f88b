"""`triton-llm <command> [args]`: one console script for the entry points.

    triton-llm serve [--model-repository DIR] [--host 127.0.0.1]    # Triton + the OpenAI frontend
    triton-llm make-repo --model_dir DIR --model_name NAME [--serve] # KServe's HF runtime arguments
    triton-llm tritonserver                                        # install Triton's copy, print its home

`python -m triton_llm.cli.<command>` runs the same code.
"""

from __future__ import annotations

import sys
from importlib import import_module

COMMANDS = {
    "serve": "triton_llm.cli.serve",
    "make-repo": "triton_llm.cli.make_repo",
    "tritonserver": "triton_llm.cli.tritonserver",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    # argparse names the program after argv[0]: `triton-llm serve --help` says so.
    sys.argv[0] = f"triton-llm {argv[0]}"
    return import_module(COMMANDS[argv[0]]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
