"""vllm_compat's choices between vLLM versions, checked on the installed vLLM with stand-ins for
the older API (tools/vllm_compat.sh runs the engine itself on the oldest vLLM we claim)."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("vllm")

from vllm.renderers.params import TokenizeParams  # noqa: E402

from triton_llm.generation.engines import vllm_compat  # noqa: E402


def _model_config(**kwargs) -> types.SimpleNamespace:
    defaults = {"max_model_len": 2048, "encoder_config": None, "is_encoder_decoder": False}
    return types.SimpleNamespace(**{**defaults, **kwargs})


class _OldRenderer:
    """vLLM 0.16's renderer: no default tokenization params of its own."""


class _NewRenderer:
    default_chat_tok_params = "chat-defaults"
    default_cmpl_tok_params = "completion-defaults"


def test_a_renderer_with_defaults_gives_its_own():
    assert vllm_compat.tok_params(_NewRenderer(), _model_config(), chat=True) == "chat-defaults"
    assert vllm_compat.tok_params(_NewRenderer(), _model_config(), chat=False) == "completion-defaults"


@pytest.mark.parametrize("chat", [True, False])
def test_without_them_the_defaults_are_built_as_the_installed_vllm_builds_them(chat):
    base = pytest.importorskip("vllm.renderers.base", reason="this vLLM has no defaults to compare with")
    BaseRenderer = base.BaseRenderer  # noqa: N806
    config = _model_config()
    ours = vllm_compat.tok_params(_OldRenderer(), config, chat)
    # vLLM 0.32's properties, read off a stand-in renderer with no multimodal processor.
    stand_in = types.SimpleNamespace(mm_processor=None, model_config=config)
    name = "default_chat_tok_params" if chat else "default_cmpl_tok_params"
    assert ours == getattr(BaseRenderer, name).func(stand_in)
    assert ours.add_special_tokens is not chat  # a rendered chat template holds its special tokens


def test_an_encoder_decoder_completion_prompt_gets_no_special_tokens():
    params = vllm_compat.tok_params(_OldRenderer(), _model_config(is_encoder_decoder=True), chat=False)
    assert params.add_special_tokens is False


class _KeywordParams:
    def with_kwargs(self, **kwargs):
        return kwargs


class _DictParams:
    def with_kwargs(self, tokenization_kwargs):
        return tokenization_kwargs


@pytest.mark.parametrize("params", [_KeywordParams(), _DictParams()], ids=["keywords", "dict"])
def test_truncation_reaches_either_with_kwargs(params):
    assert vllm_compat.with_truncation(params, 5) == {"truncate_prompt_tokens": 5}


def test_truncation_on_the_installed_tokenize_params():
    params = vllm_compat.with_truncation(TokenizeParams(max_total_tokens=100), 7)
    assert params.truncate_prompt_tokens == 7


def test_waiting_requests_count_the_skipped_ones_where_vllm_has_them():
    new = types.SimpleNamespace(num_waiting_reqs=2, num_skipped_waiting_reqs=3)
    old = types.SimpleNamespace(num_waiting_reqs=2)
    assert (vllm_compat.waiting_requests(new), vllm_compat.waiting_requests(old)) == (5, 2)


def test_client_errors_are_caught_on_every_version():
    from vllm.exceptions import VLLMValidationError

    assert issubclass(VLLMValidationError, vllm_compat.VLLMClientError)


def test_the_installed_parsers_serve_tools_where_they_parse():
    from vllm.parser.abstract_parser import DelegatingParser

    parses = hasattr(DelegatingParser, "parse_delta")  # vLLM 0.32's: yes; 0.16's: no
    assert (vllm_compat.parsers_missing("tool_call_parser") is None) == parses


def test_parsers_without_parse_are_refused_naming_the_key(monkeypatch):
    import vllm.parser.abstract_parser as abstract

    monkeypatch.setattr(abstract, "DelegatingParser", type("DelegatingParser", (), {}))
    reason = vllm_compat.parsers_missing("reasoning_parser")
    assert reason.startswith("reasoning_parser needs a newer vLLM than " + vllm_compat.VERSION)
    assert "needs a newer vLLM" in vllm_compat.parsers_missing()


def test_tool_call_helpers_import():
    delta, extracted = vllm_compat.tool_call_protocol()
    assert delta(content="x").content == "x"
    assert extracted(tools_called=False, tool_calls=[], content="y").content == "y"
    assert vllm_compat.make_tool_call_id()
