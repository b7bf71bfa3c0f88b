import asyncio
import threading

import pytest
import torch

from triton_llm.generation.engines.hf_batching import Seq2SeqBatcher, _sample
from triton_llm.generation.engines.hf_sampling import HfSampling
from triton_llm.generation.engines.hf_scheduler import Sequence


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
    assert threads == [batcher._thread]  # one OpenMP pool: see hf_scheduler.Batcher
    batcher.stop()
