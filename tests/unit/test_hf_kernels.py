"""The transformers engine's CPU kernels compute what transformers computes."""

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from triton_llm.generation.engines import hf_attention
from triton_llm.generation.engines.hf_linear import PackedLinear, pack_linears


def test_grouped_attention_equals_eager_attention_on_a_padded_batch():
    config = LlamaConfig(
        vocab_size=128, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    ids = torch.randint(0, 128, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, :4] = 0
    logits = {}
    for name in ("eager", hf_attention.NAME):
        config._attn_implementation = name
        torch.manual_seed(1)
        model = LlamaForCausalLM(config).eval()
        cache = DynamicCache()
        with torch.no_grad():
            prefill = model(input_ids=ids, attention_mask=mask, past_key_values=cache).logits
            step_mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
            step = model(
                input_ids=ids[:, :1], attention_mask=step_mask,
                position_ids=step_mask.sum(-1, keepdim=True) - 1, past_key_values=cache,
            ).logits  # fmt: skip
        logits[name] = (prefill[mask.bool()], step)
    for ours, theirs in zip(logits[hf_attention.NAME], logits["eager"], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_packed_linears_give_the_same_logits_in_bfloat16_and_float32_is_left_alone():
    config = LlamaConfig(
        vocab_size=128, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    ids = torch.randint(0, 128, (2, 7))
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        assert pack_linears(model, batch_hint=16) == 2 * 7 + 1  # 7 per layer and the LM head
        assert isinstance(model.lm_head, PackedLinear)
        assert torch.equal(model(input_ids=ids).logits, plain)  # the same oneDNN kernels: bit-identical
    assert pack_linears(LlamaForCausalLM(config).eval(), batch_hint=16) == 0


def test_a_model_with_its_own_attention_arguments_gets_its_own_eager_attention():
    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0)
    ids, decoder_ids = torch.randint(0, 64, (2, 6)), torch.randint(0, 64, (2, 4))
    logits = []
    for name in ("eager", hf_attention.NAME):  # T5 passes a position bias
        config._attn_implementation = name
        torch.manual_seed(1)
        model = T5ForConditionalGeneration(config).eval()
        with torch.no_grad():
            logits.append(model(input_ids=ids, decoder_input_ids=decoder_ids).logits)
    assert torch.equal(*logits)
