"""vLLM used as a library (triton_llm.generation.vllm_library): its choices between vLLM versions, checked on
the installed vLLM with stand-ins for the older API (tools/vllm_compat.sh runs these on the oldest vLLM we claim)."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from triton_llm.generation import vllm_library  # noqa: E402


def test_the_installed_parsers_serve_tools_where_they_parse():
    from vllm.parser.abstract_parser import DelegatingParser

    parses = hasattr(DelegatingParser, "parse_delta")  # vLLM 0.32's: yes; 0.16's: no
    assert (vllm_library.parsers_missing("tool_call_parser") is None) == parses


def test_parsers_without_parse_are_refused_naming_the_key(monkeypatch):
    import vllm.parser.abstract_parser as abstract

    monkeypatch.setattr(abstract, "DelegatingParser", type("DelegatingParser", (), {}))
    reason = vllm_library.parsers_missing("reasoning_parser")
    assert reason.startswith("reasoning_parser needs a newer vLLM than " + vllm_library.VERSION)
    assert "needs a newer vLLM" in vllm_library.parsers_missing()


def test_tool_call_helpers_import():
    delta, extracted = vllm_library.tool_call_protocol()
    assert delta(content="x").content == "x"
    assert extracted(tools_called=False, tool_calls=[], content="y").content == "y"
    assert vllm_library.make_tool_call_id()
