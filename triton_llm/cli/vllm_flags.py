"""vLLM's engine arguments on make-repo's command line (`--max-num-seqs 32`, ...), read by vLLM's own parser.

make-repo takes the arguments it does not know as vLLM's, as KServe's runtime does, and writes
those given to model.json under their `AsyncEngineArgs` names.
"""

from __future__ import annotations

import argparse
from typing import Any

from triton_llm.cli.model_source import ArgumentError


def engine_args(extra: list[str]) -> dict[str, Any]:
    """Parse the arguments we do not know with vLLM's own parser: the ones given, by model.json key."""
    if not extra:
        return {}
    if not extra[0].startswith("-"):
        raise ArgumentError(extra[0], "unexpected argument")
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs

        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # older vLLM
            from vllm.utils import FlexibleArgumentParser
    except ImportError:
        raise ArgumentError(extra[0], "unknown argument (vLLM engine arguments need vLLM installed)") from None
    parser = FlexibleArgumentParser(exit_on_error=False)
    AsyncEngineArgs.add_cli_args(parser)
    base = ["--model", "unused"]
    try:
        given, unknown = parser.parse_known_args(base + extra)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ArgumentError(extra[0], f"not a valid vLLM engine argument: {exc}") from None
    if unknown:
        raise ArgumentError(unknown[0], "unknown argument: neither KServe's nor a vLLM engine argument")
    defaults = vars(parser.parse_args(base))
    return {k: v for k, v in vars(given).items() if k != "model" and v != defaults.get(k)}
