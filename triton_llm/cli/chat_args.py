"""make_repo's chat arguments: `vllm serve`'s tool-calling, reasoning and chat-template flags.

`--tool-call-parser`, `--reasoning-parser`, `--enable-auto-tool-choice`, `--tool-strict-level`,
`--chat-template` and `--default-chat-template-kwargs` are vLLM's server arguments (not engine arguments), which
KServe's runtime passes on as vLLM's; each is spelt with dashes or underscores. They become
the model.json keys of the same names (triton_llm.settings.GenerationSettings), read by the
model's chat layer whichever its engine. They are checked here as vLLM checks them at startup:
parser names against vLLM's registries, the template found as `--chat-template` finds it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from triton_llm.cli.model_source import ArgumentError
from triton_llm.cli.repo_entry import CHAT_TEMPLATE_FILE

# model.json key -> (argparse settings, help)
_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "tool_call_parser": ({"metavar": "NAME"}, "vLLM's parser of the model's tool calls (hermes, llama3_json, ...)"),
    "enable_auto_tool_choice": ({"action": "store_true"}, 'accept tool_choice "auto" (needs --tool-call-parser)'),
    "tool_strict_level": (
        {"choices": ["auto", "function", "parameter"]},
        "how strictly structured output holds the calls of a parser with a structural tag (default here: parameter)",
    ),
    "reasoning_parser": ({"metavar": "NAME"}, "vLLM's parser of the model's reasoning (qwen3, deepseek_r1, ...)"),
    "chat_template": (
        {"metavar": "FILE_OR_TEMPLATE"},
        f"a Jinja file (copied into the entry as {CHAT_TEMPLATE_FILE}), the template itself, or one of vLLM's "
        "built-in templates by file name; default: the tokenizer's",
    ),
    "default_chat_template_kwargs": (
        {"metavar": "JSON"},
        "template variables every request gets unless it sets them, a JSON object: '{\"enable_thinking\": false}'",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("chat: vLLM's server arguments (text generation)")
    for key, (settings, doc) in _OPTIONS.items():
        group.add_argument(f"--{key.replace('_', '-')}", f"--{key}", dest=key, help=doc, **settings)


def given(args: argparse.Namespace) -> str | None:
    """The first chat flag given, as vLLM spells it; None if none was."""
    return next((_flag(key) for key in _OPTIONS if getattr(args, key)), None)


def chat_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """(model.json keys of the chat flags given, files to write next to model.json)."""
    settings: dict[str, Any] = {}
    files: dict[str, str] = {}
    if args.enable_auto_tool_choice and not args.tool_call_parser:  # vLLM's startup check
        raise ArgumentError(_flag("enable_auto_tool_choice"), "requires --tool-call-parser")
    for key in ("tool_call_parser", "reasoning_parser"):
        name = getattr(args, key)
        if name is not None:
            known = _registered(key)
            if name not in known:
                what = key.removesuffix("_parser").replace("_", " ")
                raise ArgumentError(_flag(key), f"invalid {what} parser {name!r} (choose from {', '.join(known)})")
            settings[key] = name
    if args.enable_auto_tool_choice:
        settings["enable_auto_tool_choice"] = True
    if args.tool_strict_level is not None:
        settings["tool_strict_level"] = args.tool_strict_level
    if args.chat_template is not None:
        files[CHAT_TEMPLATE_FILE] = _template(args.chat_template)
        settings["chat_template"] = CHAT_TEMPLATE_FILE  # relative to model.json: the entry moves as one
    if args.default_chat_template_kwargs is not None:
        settings["default_chat_template_kwargs"] = _json_object(args.default_chat_template_kwargs)
    return settings, files


def _flag(key: str) -> str:
    return f"--{key.replace('_', '-')}"


def _registered(key: str) -> list[str]:
    """vLLM's parser names for `key` (its own and those registered lazily)."""
    try:
        if key == "tool_call_parser":
            from vllm.tool_parsers import ToolParserManager as manager
        else:
            from vllm.reasoning import ReasoningParserManager as manager
    except ImportError:
        raise ArgumentError(_flag(key), "needs vLLM installed: its parsers run in the model") from None
    return sorted(manager.list_registered())


def _template(value: str) -> str:
    """The template `--chat-template` names, found as vLLM finds it: a file, else the template
    itself if it has Jinja's characters, else one of vLLM's built-in templates by file name."""
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ArgumentError(_flag("chat_template"), f"cannot read {path}: {exc}") from None
    if any(c in value for c in "{}\n"):
        return value
    folder = _builtin_templates()
    builtin = folder / value if folder is not None and value else None
    if builtin is not None and builtin.is_file():
        return builtin.read_text(encoding="utf-8")
    raise ArgumentError(_flag("chat_template"), f"{value!r}: no such file, nor one of vLLM's built-in templates")


def _builtin_templates() -> Path | None:
    try:
        from vllm.transformers_utils.chat_templates.registry import CHAT_TEMPLATES_DIR
    except ImportError:
        return None
    return Path(CHAT_TEMPLATES_DIR)


def _json_object(value: str) -> dict[str, Any]:
    flag = _flag("default_chat_template_kwargs")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ArgumentError(flag, f"is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ArgumentError(flag, f"must be a JSON object, got {value}")
    return parsed
