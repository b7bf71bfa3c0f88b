"""Prefix caching in the transformers engine: the block store's logic, and greedy output with hits equal to
transformers' `generate` (float32, a tiny Llama)."""

import asyncio
import threading

import pytest
import torch

from triton_llm.generation.engines.hf import attention
from triton_llm.generation.engines.hf.batching import CausalBatcher
from triton_llm.generation.engines.hf.prefix_cache import PrefixCache
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.scheduler import Sequence
from triton_llm.generation.stats import PREFIX_HITS, PREFIX_QUERIES

LAYERS, HEADS, DIM = 2, 1, 1
BLOCK_BYTES = 2 * LAYERS * HEADS * 4 * DIM * 4  # keys and values of a 4-token block, float32


def _positions(ids: list[int]):
    """A fake prefill's KV: each position's value is its token id, so that a lookup shows what it copied."""
    kv = torch.tensor(ids, dtype=torch.float32).view(1, 1, -1, 1).expand(LAYERS, HEADS, -1, DIM)

    def cut(start: int, end: int):
        cut.asked.append((start, end))
        return kv[:, :, start:end], -kv[:, :, start:end]

    cut.asked = []
    return cut


def _hit(store: PrefixCache, ids: list[int]) -> list[int]:
    """The cached tokens a lookup finds, read back from the copy it returns."""
    found = store.lookup(ids)
    if found is None:
        return []
    n, cache = found
    assert [layer.keys.shape for layer in cache.layers] == [(1, HEADS, n, DIM)] * LAYERS
    assert torch.equal(cache.layers[1].values, -cache.layers[1].keys)
    return cache.layers[0].keys.view(-1).int().tolist()


def test_a_prompt_finds_its_longest_cached_block_prefix_and_keeps_its_last_token_to_prefill():
    store = PrefixCache(1 << 20, block=4)
    prompt = list(range(1, 12))  # 11 tokens: 2 full blocks
    store.store(prompt, kv := _positions(prompt))
    assert kv.asked == [(0, 8)] and len(store) == 2
    assert _hit(store, prompt) == prompt[:8]
    assert _hit(store, [*prompt[:6], 99, 99, 99]) == prompt[:4]  # the second block differs
    assert _hit(store, prompt[:8]) == prompt[:4]  # exactly the cached prefix: its last block is prefilled
    assert _hit(store, prompt[:9]) == prompt[:8]
    assert _hit(store, [99, *prompt[1:]]) == []
    # A block is keyed by everything before it: the same tokens after another first block are not a hit.
    assert _hit(store, [9, 9, 9, 9, *prompt[4:8], 1]) == []


def test_storing_a_longer_prompt_copies_only_its_new_blocks():
    store = PrefixCache(1 << 20, block=4)
    store.store(list(range(8)), _positions(list(range(8))))
    longer = list(range(14))
    store.store(longer, kv := _positions(longer))
    assert kv.asked == [(8, 12)] and len(store) == 3
    assert _hit(store, longer) == longer[:12]


def test_the_least_recently_used_leaf_goes_first_and_memory_stays_within_the_bound():
    store = PrefixCache(3 * BLOCK_BYTES, block=4)
    a, b = [1, 1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 3, 3, 3, 3]
    store.store(a, _positions(a))
    store.store(b, _positions(b))  # shares a's first block
    assert len(store) == 3 and store.bytes == 3 * BLOCK_BYTES
    assert _hit(store, [*a, 0]) == a  # a used last: b's own block is the oldest leaf
    c = [5, 5, 5, 5, 0]
    store.store(c, _positions(c))
    assert store.bytes <= 3 * BLOCK_BYTES
    assert _hit(store, [*a, 0]) == a and _hit(store, [*b, 0]) == b[:4] and _hit(store, c) == c[:4]
    # Under a bound smaller than a block nothing stays.
    tiny = PrefixCache(BLOCK_BYTES - 1, block=4)
    tiny.store(a, _positions(a))
    assert len(tiny) == 0 and tiny.bytes == 0


def _tiny_llama(dtype: torch.dtype):
    """A tiny random Llama whose attention is peaked (large weights), so that a wrong position or a wrong
    cached row changes its greedy tokens; near-uniform attention would hide both."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, attn_implementation=attention.NAME, initializer_range=0.5,
    )  # fmt: skip
    return LlamaForCausalLM(config).to(dtype).eval()


SYSTEM = [(7 * i) % 250 + 3 for i in range(37)]  # a 37-token "system prompt": 2 blocks of 16, and 5 more


def _expected(model, prompts: list[list[int]], max_new: int) -> list[list[int]]:
    with torch.inference_mode():
        return [
            model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=None)[
                0, len(ids) :
            ].tolist()
            for ids in prompts
        ]


def _batcher(model, cap: int = 64, max_bytes: int = 1 << 26) -> tuple[CausalBatcher, threading.Event]:
    gate = threading.Event()
    batcher = CausalBatcher(
        lambda: gate.wait(10) and model, max_num_seqs=8, max_num_batched_tokens=cap, prefix_cache=PrefixCache(max_bytes)
    )
    return batcher, gate


def _run(batcher: CausalBatcher, gate: threading.Event, waves: list[list[tuple[list[int], int]]]) -> list[list[int]]:
    """Submit each wave's (prompt, max_new) at once, the next wave once the first token of the last came back."""

    async def run() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        futures = []
        for wave in waves:
            started = loop.create_future()
            for ids, max_new in wave:
                done = loop.create_future()

                def update(got, end, err, done=done, started=started):
                    assert err is None, err
                    if not started.done():
                        started.set_result(None)
                    if end:
                        done.set_result(got)

                seq = Sequence(f"r{len(futures)}", ids, max_new, [], HfSampling(temperature=0.0))
                batcher.submit(seq, update)
                futures.append(done)
            gate.set()
            await asyncio.wait_for(started, 30)
        return [await asyncio.wait_for(f, 30) for f in futures]

    try:
        return asyncio.run(run())
    finally:
        batcher.stop()


def _counters(batcher: CausalBatcher) -> tuple[float, float]:
    counters, _ = batcher.stats.snapshot()
    return counters.get((PREFIX_QUERIES, ""), 0), counters.get((PREFIX_HITS, ""), 0)


@pytest.mark.slow
def test_requests_sharing_a_system_prompt_hit_its_blocks_and_give_generate_s_tokens():
    model = _tiny_llama(torch.float32)
    first, second = [*SYSTEM, 40, 41, 42], [*SYSTEM, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60]
    exact = SYSTEM[:32]  # a prompt that is exactly the cached prefix: its last block is prefilled again
    batcher, gate = _batcher(model)
    got = _run(batcher, gate, [[(first, 10)], [(second, 10)], [(exact, 6)]])
    assert got == _expected(model, [first, second], 10) + _expected(model, [exact], 6)
    # vLLM's counters: prompt tokens looked up; tokens found (the second: 2 blocks; the exact one: 1).
    assert _counters(batcher) == (len(first) + len(second) + len(exact), 32 + 16)


@pytest.mark.slow
def test_a_hit_joins_beside_running_decodes_in_a_group_with_a_miss(monkeypatch):
    """One group holds a hit (its padding between its cached prefix and its new tokens) and a miss; a long
    request decodes meanwhile, in the same passes (`packed`)."""
    from triton_llm.generation.engines.hf import packed

    passes = []
    monkeypatch.setattr(packed, "run", lambda *args, run=packed.run: passes.append(len(args[1])) or run(*args))
    model = _tiny_llama(torch.float32)
    runner = [9, 8, 7, 6, 5]
    hit, miss = [*SYSTEM, 61, 62], [70 + i for i in range(20)]
    batcher, gate = _batcher(model)
    waves = [[(runner, 40)], [(SYSTEM + [1], 2)], [(hit, 12), (miss, 12)]]
    got = _run(batcher, gate, waves)
    expected = [*_expected(model, [runner], 40), *_expected(model, [SYSTEM + [1]], 2)]
    assert got == expected + _expected(model, [hit, miss], 12)
    assert _counters(batcher)[1] == 32
    # The check at load, then the later waves' joins beside running decodes: the long request, and the second
    # wave's if it has not ended yet (thread timing), so the rows per pass are not fixed past the first two.
    assert passes[:2] == [1, 1] and len(passes) >= 3 and all(rows >= 1 for rows in passes)


@pytest.mark.slow
def test_a_hit_longer_than_the_cap_continues_in_pieces_and_eviction_under_a_tiny_bound_keeps_output_right():
    model = _tiny_llama(torch.float32)
    long = [*SYSTEM, *range(100, 140)]  # 77 tokens: after a 32-token hit, 45 more in pieces of 16
    block = 2 * 2 * 2 * 16 * 16 * 4  # keys and values, 2 layers, 2 KV heads, 16 tokens, head_dim 16, float32
    batcher, gate = _batcher(model, cap=16, max_bytes=3 * block)
    got = _run(batcher, gate, [[(SYSTEM + [1], 2)], [(long, 8)], [(long, 8)]])
    assert got == _expected(model, [SYSTEM + [1]], 2) + _expected(model, [long], 8) * 2
    assert batcher.prefix_cache is not None and batcher.prefix_cache.bytes <= 3 * block
    assert _counters(batcher)[1] == 32 + 48  # the bound kept 3 of the 4 blocks (the leaf went first)
