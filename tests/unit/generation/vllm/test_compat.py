"""vllm_compat's choices between vLLM versions, checked on the installed vLLM with stand-ins for
the older API (tools/compat.sh runs the engine itself on the oldest vLLM we claim)."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("vllm")

from vllm.renderers.params import TokenizeParams  # noqa: E402

from triton_llm.generation.engines.vllm import compat  # noqa: E402


def _model_config(**kwargs) -> types.SimpleNamespace:
    defaults = {"max_model_len": 2048, "encoder_config": None, "is_encoder_decoder": False}
    return types.SimpleNamespace(**{**defaults, **kwargs})


class _OldRenderer:
    """vLLM 0.16's renderer: no default tokenization params of its own."""


class _NewRenderer:
    default_chat_tok_params = "chat-defaults"
    default_cmpl_tok_params = "completion-defaults"


def test_a_renderer_with_defaults_gives_its_own():
    assert compat.tok_params(_NewRenderer(), _model_config(), chat=True) == "chat-defaults"
    assert compat.tok_params(_NewRenderer(), _model_config(), chat=False) == "completion-defaults"


@pytest.mark.parametrize("chat", [True, False])
def test_without_them_the_defaults_are_built_as_the_installed_vllm_builds_them(chat):
    base = pytest.importorskip("vllm.renderers.base", reason="this vLLM has no defaults to compare with")
    BaseRenderer = base.BaseRenderer  # noqa: N806
    config = _model_config()
    ours = compat.tok_params(_OldRenderer(), config, chat)
    # vLLM 0.32's properties, read off a stand-in renderer with no multimodal processor.
    stand_in = types.SimpleNamespace(mm_processor=None, model_config=config)
    name = "default_chat_tok_params" if chat else "default_cmpl_tok_params"
    assert ours == getattr(BaseRenderer, name).func(stand_in)
    assert ours.add_special_tokens is not chat  # a rendered chat template holds its special tokens


def test_an_encoder_decoder_completion_prompt_gets_no_special_tokens():
    params = compat.tok_params(_OldRenderer(), _model_config(is_encoder_decoder=True), chat=False)
    assert params.add_special_tokens is False


class _KeywordParams:
    def with_kwargs(self, **kwargs):
        return kwargs


class _DictParams:
    def with_kwargs(self, tokenization_kwargs):
        return tokenization_kwargs


@pytest.mark.parametrize("params", [_KeywordParams(), _DictParams()], ids=["keywords", "dict"])
def test_truncation_reaches_either_with_kwargs(params):
    assert compat.with_truncation(params, 5) == {"truncate_prompt_tokens": 5}


def test_truncation_on_the_installed_tokenize_params():
    params = compat.with_truncation(TokenizeParams(max_total_tokens=100), 7)
    assert params.truncate_prompt_tokens == 7


def test_waiting_requests_count_the_skipped_ones_where_vllm_has_them():
    new = types.SimpleNamespace(num_waiting_reqs=2, num_skipped_waiting_reqs=3)
    old = types.SimpleNamespace(num_waiting_reqs=2)
    assert (compat.waiting_requests(new), compat.waiting_requests(old)) == (5, 2)


def test_client_errors_are_caught_on_every_version():
    from vllm.exceptions import VLLMValidationError

    assert issubclass(VLLMValidationError, compat.VLLMClientError)
