"""Beam search as vLLM 0.32's server runs it: its own `BeamSearchOnlineMixin.beam_search`
(`entrypoints/generate/beam_search/online.py`), around our AsyncLLM. Each step sends one
request per beam for one token with 2 x beam_width logprobs and keeps the best beam_width
continuations; the `n` best beams (by `length_penalty`) come back at once, in one final output
(streamed too: one chunk). The parameters are those vLLM's `to_beam_search_params` takes from a
request: `n` beams, `max_tokens`, `temperature` (default 1.0), `ignore_eos`,
`include_stop_str_in_output`, `skip_special_tokens`; the other sampling fields do not apply.
Cancelling the iteration cancels the step's requests, which AsyncLLM aborts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from vllm.entrypoints.generate.beam_search.online import BeamSearchOnlineMixin
from vllm.sampling_params import BeamSearchParams, SamplingParams


class _Search(BeamSearchOnlineMixin):
    def __init__(self, llm: Any):
        self.engine_client = llm
        self.renderer = llm.renderer


def search(
    llm: Any,
    engine_input: Any,
    params: SamplingParams,
    beams: int,
    length_penalty: float,
    request_id: str,
    lora: Any,
    room: int,
) -> AsyncIterator[Any]:
    """vLLM's RequestOutputs of a beam search of `beams` beams (one output, final) for the rendered
    `engine_input`; `room`: the most tokens the context leaves (vLLM's default `max_tokens`)."""
    beam = BeamSearchParams(
        beam_width=beams,
        max_tokens=min(params.max_tokens or room, room),
        ignore_eos=params.ignore_eos,
        temperature=params.temperature,
        length_penalty=length_penalty,
        include_stop_str_in_output=params.include_stop_str_in_output,
        skip_special_tokens=params.skip_special_tokens,
    )
    return _Search(llm).beam_search(engine_input, request_id, beam, lora_request=lora)
