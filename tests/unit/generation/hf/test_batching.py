import asyncio
import threading

import pytest
import torch

from triton_llm.generation.engines.hf import attention
from triton_llm.generation.engines.hf.batching import CausalBatcher, Seq2SeqBatcher
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.sampling import sample as _sample
from triton_llm.generation.engines.hf.scheduler import Batcher, Sequence

pytestmark = pytest.mark.slow


class _BrokenEncoderModel:
    """A model whose encoder fails: stands in for a forward pass that raises (e.g. out of memory)."""

    class config:
        decoder_start_token_id = 0
        pad_token_id = 0

    device = "cpu"

    def get_encoder(self):
        def encode(**_):
            raise RuntimeError("encoder exploded")

        return encode


def test_a_failed_join_fails_the_joining_requests_and_the_batcher_keeps_going():
    async def run():
        batcher = Seq2SeqBatcher(_BrokenEncoderModel, max_num_seqs=4)
        updates: asyncio.Queue = asyncio.Queue()
        seq = Sequence("r-0", [5, 6], 4, [1], HfSampling(temperature=0.0))
        batcher.submit(seq, lambda ids, done, err: updates.put_nowait((ids, done, err)))
        ids, done, error = await asyncio.wait_for(updates.get(), 10)
        assert (ids, done, error) == ([], True, "encoder exploded")
        assert batcher.num_unfinished() == 0
        batcher.stop()

    asyncio.run(run())


def test_sampling_draws_from_the_distribution_and_never_a_zero_mass_token():
    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3], [0.0, 0.0, 0.0, 0.0, 1.0]]).repeat(50_000, 1)
    draws = torch.tensor(_sample(probs)).view(-1, 2)
    freq = torch.bincount(draws[:, 0], minlength=5).float() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.0, 0.2, 0.0, 0.5, 0.3]), atol=0.01)
    assert (draws[:, 1] == 4).all()


def test_a_failed_load_is_raised_to_the_caller_waiting_for_the_model():
    def load():
        raise OSError("no such model folder")

    batcher = Seq2SeqBatcher(load, max_num_seqs=4)
    with pytest.raises(OSError, match="no such model folder"):
        batcher.wait_loaded()
    batcher.stop()


def test_the_model_is_loaded_on_the_thread_that_runs_the_steps():
    threads = []

    def load():
        threads.append(threading.current_thread())
        return _BrokenEncoderModel()

    batcher = Seq2SeqBatcher(load, max_num_seqs=4)
    batcher.wait_loaded()
    assert threads == [batcher._thread]  # one OpenMP pool: see engines/hf/scheduler.Batcher
    batcher.stop()


class _Recorder(Batcher):
    """Logs what the scheduler asks of a decoder-only batcher, without a model; every token is 7."""

    chunks_prompts = True
    on_extend = staticmethod(lambda a: None)

    def setup(self) -> None:
        self.log: list[str] = []

    def join(self, joining, packed=False):
        self.log.append("join " + ",".join(str(len(a.seq.prompt_ids) - a.prefilled) for a in joining))
        self.active += joining
        return [7] * len(joining)

    def extend(self, a, end, packed=False):
        self.log.append(f"extend {a.prefilled}-{end}")
        a.prefilled = end
        self.on_extend(a)

    def step(self):
        self.log.append(f"step {len(self.active)}")
        return [7] * len(self.active)


def _serve(batcher: Batcher, prompts: list[int], max_new: int, gate: threading.Event) -> list[list[int]]:
    """Submit prompts of these lengths at once (the thread waits on `gate` to see them together); their outputs."""

    async def run() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in prompts]
        for i, n in enumerate(prompts):
            seq = Sequence(f"r{i}", list(range(10, 10 + n)), max_new, [], HfSampling(temperature=0.0), stream=False)
            batcher.submit(seq, lambda ids, end, err, f=done[i]: end and f.set_result((ids, err)))
        gate.set()
        results = [await asyncio.wait_for(f, 10) for f in done]
        assert all(err is None for _, err in results)
        return [ids for ids, _ in results]

    return asyncio.run(run())


def _recorder(cap: int, max_num_seqs: int = 16, kind: type = _Recorder, **limits) -> tuple[_Recorder, threading.Event]:
    """A recorder of `kind` whose thread waits on the returned gate before it sees its first requests."""
    gate = threading.Event()
    return kind(lambda: gate.wait(10), max_num_seqs=max_num_seqs, max_num_batched_tokens=cap, **limits), gate


def test_joining_prompts_are_prefilled_whole_in_groups_that_fit_the_cap_with_decode_steps_between():
    batcher, gate = _recorder(cap=16)
    assert _serve(batcher, [4, 4, 4, 4, 6, 3], max_new=3, gate=gate) == [[7] * 3] * 6
    batcher.stop()
    # 4 rows x 4 tokens fit 16; then 2 rows padded to 6 (12). The first group decodes meanwhile.
    assert batcher.log[:4] == ["join 4,4,4,4", "step 4", "join 6,3", "step 6"]


def test_a_prompt_longer_than_the_cap_is_prefilled_in_pieces_between_decode_steps():
    batcher, gate = _recorder(cap=16, max_num_seqs=2)
    assert _serve(batcher, [3, 40, 5], max_new=6, gate=gate) == [[7] * 6] * 3
    batcher.stop()
    # The 40-token prompt: two pieces of 16, then its last 8 join; the 5-token one waits for a free row.
    assert batcher.log[:8] == [
        "join 3", "step 1", "extend 0-16", "step 1", "extend 16-32", "step 1", "join 8", "step 2",
    ]  # fmt: skip
    assert "join 5" in batcher.log


def test_a_prompt_cancelled_between_its_pieces_frees_its_row():
    batcher, gate = _recorder(cap=4, max_num_seqs=1)
    batcher.on_extend = lambda a: a.prefilled == 8 and batcher.cancel(a.seq.request_id)

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        long, short = loop.create_future(), loop.create_future()
        seq = Sequence("long", list(range(100)), 4, [], HfSampling(temperature=0.0))
        batcher.submit(seq, lambda ids, end, err: long.set_result(ids))  # never called: cancelled
        seq = Sequence("short", [1, 2], 2, [], HfSampling(temperature=0.0), stream=False)
        batcher.submit(seq, lambda ids, end, err: end and short.set_result(ids))
        gate.set()
        return await asyncio.wait_for(short, 10)

    assert asyncio.run(run()) == [7, 7]
    batcher.stop()
    assert batcher.log[:3] == ["extend 0-4", "extend 4-8", "join 2"]
    assert batcher.num_unfinished() == 0


def _tiny_llama(dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, attn_implementation=attention.NAME,
    )  # fmt: skip
    return LlamaForCausalLM(config).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_greedy_output_of_prompts_prefilled_in_pieces_equals_generate(dtype):
    """Token-wise chunks change the prefill's matmul shapes, not its greedy tokens (one request at a time, as
    `generate` runs; batched rows in bf16 round differently whatever the cap)."""
    model = _tiny_llama(dtype)
    prompts = [list(range(3 + k, 3 + k + n)) for k, n in enumerate([5, 8, 9, 23, 40])]
    expected = []
    with torch.inference_mode():
        for ids in prompts:
            out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None)
            expected.append(out[0, len(ids) :].tolist())
    batcher = CausalBatcher(lambda: model, max_num_seqs=4, max_num_batched_tokens=8)
    batcher.wait_loaded()

    async def run() -> list[list[int]]:
        outputs = []
        for i, ids in enumerate(prompts):
            done = asyncio.get_running_loop().create_future()
            seq = Sequence(f"r{i}", ids, 12, [], HfSampling(temperature=0.0), stream=False)
            batcher.submit(seq, lambda got, end, err, f=done: end and f.set_result(got))
            outputs.append(await asyncio.wait_for(done, 30))
        return outputs

    assert asyncio.run(run()) == expected
    batcher.stop()


class _PackingRecorder(_Recorder):
    """A `_Recorder` whose joins and pieces run in the running rows' decode pass."""

    def packs(self, joining):
        return True

    def join(self, joining, packed=False):
        running = len(self.active)
        tokens = super().join(joining)
        if packed:
            self.log[-1] += f" +step {running}"
        return [7] * running + tokens if packed else tokens

    def extend(self, a, end, packed=False):
        super().extend(a, end)
        if packed:
            self.log[-1] += f" +step {len(self.active)}"
            return [7] * len(self.active)


def test_a_packed_batcher_prefills_joining_groups_and_pieces_in_the_running_rows_decode_pass():
    batcher, gate = _recorder(cap=16, kind=_PackingRecorder)
    assert _serve(batcher, [4, 4, 4, 4, 6, 3, 40], max_new=5, gate=gate) == [[7] * 5] * 7
    batcher.stop()
    # The first group joins an empty batch: a pass of its own. Later groups and pieces carry the running rows' step.
    assert batcher.log[:7] == [
        "join 4,4,4,4", "step 4", "join 6,3 +step 4", "extend 0-16 +step 6", "extend 16-32 +step 6", "join 8 +step 2",
        "step 3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("stall_budget", "passes"),
    [
        (0, ["join 40 +step 4"]),  # no budget: the cap (64) alone
        (256, ["join 40 +step 4"]),  # 256 / 4 rows: 64 tokens, the whole prompt
        (64, ["extend 0-16 +step 4", "extend 16-32 +step 4", "join 8 +step 4"]),  # 64 / 4 rows: pieces of 16
    ],
)
def test_the_stall_budget_prefills_a_prompt_joining_running_rows_in_pieces_of_its_share(stall_budget, passes):
    batcher, gate = _recorder(cap=64, kind=_PackingRecorder, prefill_stall_budget=stall_budget)
    assert _serve(batcher, [4, 4, 4, 4, 40], max_new=8, gate=gate) == [[7] * 8] * 5
    batcher.stop()
    # The first group joins an empty batch: no row waits on it, so only the cap bounds it.
    assert batcher.log[: 2 + len(passes)] == ["join 4,4,4,4", "step 4", *passes]


def test_a_prompt_with_others_queued_behind_it_joins_at_the_cap_and_the_last_in_pieces():
    batcher, gate = _recorder(cap=64, kind=_PackingRecorder, prefill_stall_budget=64)
    assert _serve(batcher, [4, 4, 4, 4, 40, 40], max_new=8, gate=gate) == [[7] * 8] * 6
    batcher.stop()
    # The first 40 with another behind it: whole (two would pad to 80, over the cap). The second alone beside 5
    # rows: 64 / 5 is under a block, so pieces of 16.
    assert batcher.log[:6] == [
        "join 4,4,4,4", "step 4", "join 40 +step 4", "extend 0-16 +step 5", "extend 16-32 +step 5", "join 8 +step 5",
    ]  # fmt: skip


@pytest.mark.parametrize("packed_step", [True, False])
def test_greedy_output_with_groups_and_pieces_joining_running_decodes_equals_generate(monkeypatch, packed_step):
    """float32: a group and a long prompt in pieces join while a request decodes; each row's tokens are `generate`'s,
    packed into the running rows' passes or not."""
    from tests.unit.generation.hf.test_prefix_cache import _expected, _run, _tiny_llama
    from triton_llm.generation.engines.hf import packed

    passes = []
    monkeypatch.setattr(packed, "run", lambda *args, run=packed.run: passes.append(args[1]) or run(*args))
    model = _tiny_llama(torch.float32)
    runner, short, other, long = [9, 8, 7, 6, 5], [20, 21, 22], list(range(30, 42)), list(range(50, 90))
    gate = threading.Event()
    batcher = CausalBatcher(
        lambda: gate.wait(10) and model, max_num_seqs=8, max_num_batched_tokens=16, packed_step=packed_step
    )
    got = _run(batcher, gate, [[(runner, 40)], [(short, 12), (other, 12)], [(long, 10)]])
    assert got == _expected(model, [runner], 40) + _expected(model, [short, other], 12) + _expected(model, [long], 10)
    # Packed, after the check at load: the two (2 x 12 tokens padded is over the cap: one at a time), and the long
    # prompt's 3 passes (2 pieces of 16, its last 8), each with the running rows: 1, 1, 2, 3, 3, 3 as a rule, but
    # how many rows still run when the later waves come is thread timing.
    rows = [len(last) for last in passes]
    assert (rows[:2] == [1, 1] and len(rows) == 6 and min(rows) >= 1) if packed_step else rows == []
