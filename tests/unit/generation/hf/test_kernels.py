"""The transformers engine's CPU kernels compute what transformers computes."""

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration
from transformers.models.llama.modeling_llama import eager_attention_forward

from triton_llm.generation.engines.hf import attention
from triton_llm.generation.engines.hf.linear import PackedLinear, pack_linears

pytestmark = pytest.mark.slow

# SmolLM2-135M's shapes: 9 query heads on 3 KV heads of 64, hidden 576, MLP 1536.
SMOLLM2 = {"heads": 9, "kv_heads": 3, "head_dim": 64, "hidden": 576, "mlp": 1536}
# (batch, new tokens, cached + new tokens): prefill and decode, alone and 16 rows.
ATTENTION_SHAPES = [(1, 40, 40), (1, 1, 41), (1, 68, 196), (1, 1, 250), (16, 1, 120), (16, 40, 40)]


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
    for name in ("eager", attention.NAME):
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
    for ours, theirs in zip(logits[attention.NAME], logits["eager"], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,q_len,kv_len", ATTENTION_SHAPES)
def test_grouped_attention_is_bit_identical_to_eager_in_bfloat16_on_smollm2_shapes(batch, q_len, kv_len):
    """bfloat16 keeps 8 bits: any change in summation order would show (and flip greedy tokens)."""
    h, kv, d = SMOLLM2["heads"], SMOLLM2["kv_heads"], SMOLLM2["head_dim"]
    module = torch.nn.Module()
    module.num_key_value_groups, module.training = h // kv, False
    torch.manual_seed(0)
    query = torch.randn(batch, h, q_len, d, dtype=torch.bfloat16) * 3
    key, value = (torch.randn(batch, kv, kv_len, d, dtype=torch.bfloat16) * 3 for _ in range(2))
    low = torch.finfo(torch.bfloat16).min
    mask = torch.full((q_len, kv_len), low).triu(kv_len - q_len + 1).to(torch.bfloat16).repeat(batch, 1, 1, 1)
    if batch > 1:
        mask[0, :, :, :5] = low  # a left-padded row
    with torch.inference_mode():
        theirs = eager_attention_forward(module, query, key, value, mask, scaling=d**-0.5)[0]
        ours = attention.grouped_eager_attention(module, query, key, value, mask, scaling=d**-0.5)[0]
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("threads", [1, 2])
def test_packed_linears_are_bit_identical_in_bfloat16_on_smollm2_shapes(threads):
    torch.manual_seed(0)
    layers = [(SMOLLM2["hidden"], SMOLLM2["hidden"]), (SMOLLM2["hidden"], SMOLLM2["mlp"]), (SMOLLM2["mlp"], 576)]
    layers.append((SMOLLM2["hidden"], 8192))  # an LM head (SmolLM2's has 49152 rows)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for fan_in, fan_out in layers:
            linear = torch.nn.Linear(fan_in, fan_out, bias=False, dtype=torch.bfloat16)
            for hint in (1, 16, 64):
                packed = PackedLinear(linear, hint)
                for shape in ((1, 1, fan_in), (1, 40, fan_in), (16, 1, fan_in), (1, 200, fan_in)):
                    x = torch.randn(shape, dtype=torch.bfloat16)
                    with torch.inference_mode():
                        assert torch.equal(packed(x), linear(x)), (fan_in, fan_out, hint, shape)
    finally:
        torch.set_num_threads(before)


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
    # float32 only when asked: MKL's sums differ from oneDNN's in the last bits.
    assert pack_linears(LlamaForCausalLM(config).eval(), batch_hint=16, float32=True) == 2 * 7 + 1


def test_a_model_with_its_own_attention_arguments_gets_its_own_eager_attention():
    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0)
    ids, decoder_ids = torch.randint(0, 64, (2, 6)), torch.randint(0, 64, (2, 4))
    logits = []
    for name in ("eager", attention.NAME):  # T5 passes a position bias
        config._attn_implementation = name
        torch.manual_seed(1)
        model = T5ForConditionalGeneration(config).eval()
        with torch.no_grad():
            logits.append(model(input_ids=ids, decoder_input_ids=decoder_ids).logits)
    assert torch.equal(*logits)
