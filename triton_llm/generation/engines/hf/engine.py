"""Hugging Face transformers behind the Engine interface: text generation and text2text.

For the models vLLM does not implement (T5 and other encoder-decoders, new or custom
architectures) or when model.json asks for `"backend": "huggingface"`. Batching is
continuous (`batching`, `scheduler`); this module turns requests into sequences and token ids back
into text deltas, stop strings and finish reasons, with vLLM's semantics so that clients
cannot tell the engines apart. Structured outputs are compiled here, off the event loop,
and enforced per sequence by the batcher (`structured`).

Its model.json keys are `HfGenerationSettings` (docs/settings.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from triton_llm import hf_loading
from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.base import check_token_ids, prompt_field, render_prompt, truncate_prompt
from triton_llm.generation.engines.hf import attention, linear, multimodal, token_filters
from triton_llm.generation.engines.hf.batching import CausalBatcher, Seq2SeqBatcher
from triton_llm.generation.engines.hf.detokenizer import IncrementalDetokenizer, StopStrings
from triton_llm.generation.engines.hf.prefix_cache import PrefixCache
from triton_llm.generation.engines.hf.sampling import to_hf_sampling
from triton_llm.generation.engines.hf.scheduler import Active, Sequence
from triton_llm.generation.engines.hf.structured import Grammars, RowGrammar
from triton_llm.generation.engines.limits import check_max_tokens
from triton_llm.generation.request_options import refuse_unsupported
from triton_llm.generation.stats import EngineStats, Load
from triton_llm.generation.types import ChoiceDelta, EngineTimings, GenerateRequest, GenerationChunk
from triton_llm.settings import HfGenerationSettings
from triton_llm.tasks import Task

logger = logging.getLogger(__name__)


@dataclass
class _Choice:
    index: int
    seq_id: str
    detokenizer: IncrementalDetokenizer
    stops: StopStrings
    token_ids: list[int] = field(default_factory=list)  # all received so far (and reported)
    finish_reason: str | None = None


class HuggingFaceEngine:
    def __init__(self, settings: HfGenerationSettings, task: Task, device: str):
        self.settings = settings
        self.task = task
        self.device = device  # hf_loading.device: from Triton's instance placement
        self.max_model_len: int | None = None
        self.max_num_seqs = settings.max_num_seqs
        self._tokenizer: Any = None
        self._batcher: CausalBatcher | Seq2SeqBatcher | None = None
        self._eos: list[int] = []
        self._vocab_limit = 0  # the largest token id
        self._grammars: Grammars | None = None
        self._image_prompts: multimodal.ImagePrompts | None = None  # a vision-language model's processor
        self.stats = EngineStats()

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        s = self.settings
        self._tokenizer = hf_loading.load_tokenizer(s)
        if multimodal.is_multimodal(hf_loading.load_config(s)):
            self._image_prompts = multimodal.ImagePrompts(multimodal.load_processor(s), s)
        batcher = CausalBatcher if self.task == Task.TEXT_GENERATION else Seq2SeqBatcher
        # The batcher's thread loads the model: all torch work stays on that thread.
        limits: dict[str, Any] = {
            "max_num_seqs": s.max_num_seqs,
            "max_num_batched_tokens": s.max_num_batched_tokens,
            "prefill_stall_budget": s.prefill_stall_budget,
        }
        if batcher is CausalBatcher and s.enable_prefix_caching and self._image_prompts is None:
            limits["prefix_cache"] = PrefixCache(s.prefix_cache_bytes)  # a prompt's image tokens: KV of its pixels
        if batcher is CausalBatcher:
            limits["packed_step"] = s.packed_step
        self._batcher = batcher(self._load_model, **limits, stats=self.stats)
        model = self._batcher.wait_loaded()
        config = model.config.get_text_config()  # a vision-language model's: its text model's
        self.max_model_len = int(
            s.max_model_len
            or getattr(config, "max_position_embeddings", None)
            or getattr(config, "n_positions", None)
            # transformers' "no limit" is 1e30; T5's tokenizers say 512, the length it was trained on.
            or min(self._tokenizer.model_max_length, 512)
        )
        self._vocab_limit = max(len(self._tokenizer), getattr(config, "vocab_size", 0) or 0) - 1
        self._grammars = Grammars(self._tokenizer, vocab_size=self._vocab_limit + 1)
        self._max_chars_per_token = max(len(token) for token in self._tokenizer.get_vocab())  # vLLM's bound
        eos = {self._tokenizer.eos_token_id, *_ids(model.generation_config.eos_token_id)}
        self._eos = sorted(t for t in eos if t is not None)
        logger.info(
            "transformers engine ready: %s, task %s, dtype %s, max_model_len %d, max_num_seqs %d",
            s.model, self.task, model.dtype, self.max_model_len, s.max_num_seqs,
        )  # fmt: skip

    def _load_model(self) -> Any:
        s = self.settings
        cpu = self.device == "cpu"
        cls = multimodal.model_class(self._image_prompts is not None, causal=self.task == Task.TEXT_GENERATION)
        # On a CPU, eager attention beats SDPA for padded decoding batches (SmolLM2, bf16,
        # 200 cached tokens: 40 vs 59 ms per step alone, 81 vs 116 ms for 16 rows), and
        # grouped eager attention beats eager (see attention.py). Both the grouped attention
        # and the packed linears compute eager's bits: greedy output is transformers' own
        # `generate` with attn_implementation="eager", in bfloat16 too (tools/hf_fidelity).
        attn = s.attn_implementation or (attention.NAME if cpu else None)
        # The batchers put their inputs on `model.device`.
        model = hf_loading.load_model(cls, s, self.device, attn_implementation=attn)
        if cpu:
            linear.pack_linears(model, batch_hint=s.max_num_seqs, float32=s.pack_float32_linears)
        follows = "eager" if attn == attention.NAME else model.config._attn_implementation
        logger.info("attention %s: greedy output follows transformers' %s attention", attn, follows)
        return model

    def num_choices(self, request: GenerateRequest) -> int:
        return to_hf_sampling(request.sampling).n

    def _prompt_ids(self, request: GenerateRequest, prompt: str) -> list[int]:
        if request.prompt_ids is not None:
            ids = list(request.prompt_ids)
        else:
            # As vLLM: a text longer than the context can hold in any tokenization is refused untokenized
            # (a 4 MB chat took 3 s of the engine's loop and left 400 MB more in the process).
            most = self.max_model_len * self._max_chars_per_token
            if request.truncate_prompt_tokens is None and len(prompt) > most:
                raise InvalidInput(
                    prompt_field(request),
                    f"the prompt is {len(prompt)} characters, more than {self.max_model_len} tokens can hold "
                    f"({most}): longer than this model's maximum context length of {self.max_model_len} tokens",
                )
            # A rendered chat template already holds its special tokens (as in vLLM).
            ids = self._tokenizer(prompt, add_special_tokens=request.messages is None).input_ids
        ids = truncate_prompt(ids, request, self.max_model_len, room_for_output=self.task == Task.TEXT_GENERATION)
        return self._check_length(request, ids)

    def _check_length(self, request: GenerateRequest, ids: list[int]) -> list[int]:
        where = prompt_field(request)
        if not ids:
            raise InvalidInput(where, "the prompt has no tokens")
        # A decoder-only prompt needs room for at least one new token.
        if len(ids) > self.max_model_len or (len(ids) == self.max_model_len and self.task == Task.TEXT_GENERATION):
            raise InvalidInput(
                where,
                f"the prompt is {len(ids)} tokens, longer than this model's maximum context length of "
                f"{self.max_model_len} tokens",
            )
        return ids

    async def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]:
        if request.images and self._image_prompts is None:  # before its chat template meets a list of parts
            raise InvalidInput(request.images[0].field, multimodal.TEXT_ONLY)
        sampling = to_hf_sampling(request.sampling)
        refuse_unsupported(request, "huggingface", priority_scheduling=False, beam_search=False)
        sampling.token_filter = token_filters.build(
            sampling.allowed_token_ids, sampling.bad_words, self._tokenizer, self._vocab_limit + 1
        )
        if request.prompt_ids is not None:
            check_token_ids(request.prompt_ids, self._vocab_limit)
        prompt = render_prompt(self._tokenizer, request)
        image_inputs = None
        if request.images:  # the processor expands each placeholder into the image's tokens
            assert self._image_prompts is not None
            prompt_ids, image_inputs = await self._image_prompts.prepare(request, prompt)
            self._check_length(request, prompt_ids)
        else:
            prompt_ids = self._prompt_ids(request, prompt)
        if request.truncate_prompt_tokens is not None:
            prompt = self._tokenizer.decode(prompt_ids)  # what the model saw, for echo
        causal = self.task == Task.TEXT_GENERATION
        prompt_name = "messages" if request.messages is not None else "prompt"
        check_max_tokens(sampling.max_tokens, len(prompt_ids) if causal else None, self.max_model_len, prompt_name)
        room = self.max_model_len - len(prompt_ids) if causal else self.max_model_len
        max_new = min(sampling.max_tokens or room, room)
        eos = [*([] if sampling.ignore_eos else self._eos), *sampling.stop_token_ids]
        compiled, grammar_stops = None, []
        if sampling.structured_outputs is not None:
            assert self._grammars is not None
            # 5-100 ms of compiling (cached per constraint), off the loop; the batch step goes on meanwhile.
            compiled = await asyncio.to_thread(self._grammars.compile, sampling.structured_outputs)
            # vLLM's: the grammar ends with any EOS id (ignore_eos or not) or stop token id.
            grammar_stops = sorted({*self._eos, *sampling.stop_token_ids})
            eos = sorted({*eos, *grammar_stops})  # ending the grammar is a stop, the token not part of the text
        # Decoder-only text continues the prompt: its tail is the context for the first token.
        context = prompt_ids if causal else []
        choices = [
            _Choice(
                i,
                f"{request_id}-{i}",
                IncrementalDetokenizer(self._tokenizer, context, sampling.skip_special_tokens),
                StopStrings(sampling.stop, sampling.include_stop_str_in_output),
            )
            for i in range(sampling.n)
        ]
        updates: asyncio.Queue = asyncio.Queue()
        actives: list[Active] = []  # the batcher's view of each choice: its timings
        assert self._batcher is not None
        for i, choice in enumerate(choices):
            seq = Sequence(
                choice.seq_id, prompt_ids, max_new, eos, sampling,
                stream=request.stream or bool(sampling.stop),  # stop strings are checked token by token
                grammar=RowGrammar(compiled, grammar_stops) if compiled is not None else None,
                image_inputs=image_inputs,
            )  # fmt: skip
            actives.append(
                self._batcher.submit(seq, lambda ids, done, err, i=i: updates.put_nowait((i, ids, done, err)))
            )
        pending = len(choices)
        try:
            while pending:
                i, ids, done, error = await updates.get()
                choice = choices[i]
                if choice.finish_reason is not None:
                    continue  # stopped by a stop string; late tokens are dropped
                if error:
                    raise RuntimeError(error)
                delta = self._advance(choice, ids, done, eos)
                if choice.finish_reason is not None:
                    pending -= 1
                if request.stream:
                    timings = _timings(actives) if pending == 0 else None
                    yield GenerationChunk(prompt, len(prompt_ids), [delta], pending == 0, prompt_ids, timings=timings)
            if not request.stream:
                yield GenerationChunk(
                    prompt,
                    len(prompt_ids),
                    [
                        ChoiceDelta(c.index, c.stops.text, len(c.token_ids), c.finish_reason, token_ids=c.token_ids)
                        for c in choices
                    ],
                    finished=True,
                    prompt_token_ids=prompt_ids,
                    timings=_timings(actives),
                )
        finally:
            for choice in choices:
                if choice.finish_reason is None and self._batcher is not None:
                    self._batcher.cancel(choice.seq_id)

    def _advance(self, choice: _Choice, ids: list[int], done: bool, eos: list[int]) -> ChoiceDelta:
        new = ids[len(choice.token_ids) :]
        choice.token_ids = ids
        ended_by_eos = done and bool(ids) and ids[-1] in eos
        # The stop token is counted but, as in vLLM, not part of the text.
        choice.stops.add(choice.detokenizer.add(new[:-1] if ended_by_eos else new))
        if choice.stops.stopped and not done:
            self._batcher.cancel(choice.seq_id)
            done = True
        if done:
            choice.finish_reason = "stop" if (ended_by_eos or choice.stops.stopped) else "length"
        return ChoiceDelta(choice.index, choice.stops.take(done), len(new), choice.finish_reason, token_ids=new)

    def num_unfinished(self) -> int:
        return self._batcher.num_unfinished() if self._batcher is not None else 0

    def load(self) -> Load:
        """KV-cache usage: the token positions the batch holds state for over the most it can
        hold, `max_num_seqs` rows of `max_model_len` (its cache grows with the batch; vLLM's
        is a fixed pool of blocks)."""
        batcher = self._batcher
        if batcher is None or not self.max_model_len:
            return Load()
        running = len(batcher.active)
        capacity = batcher.max_num_seqs * self.max_model_len
        return Load(running, max(0, batcher.num_unfinished() - running), min(1.0, batcher.cache_tokens() / capacity))

    def dead(self) -> str | None:
        return self._batcher.dead() if self._batcher is not None else None

    async def shutdown(self) -> None:
        if self._batcher is not None:
            await asyncio.to_thread(self._batcher.stop)
            self._batcher = None


def _timings(actives: list[Active]) -> EngineTimings | None:
    """A request's timings over its choices: the first one queued to the last token of any."""
    if not all(a.joined and a.first_token for a in actives):
        return None
    return EngineTimings(
        queued=min(a.arrived for a in actives),
        scheduled=min(a.joined for a in actives),
        first_token=min(a.first_token for a in actives),
        last_token=max(a.last_token for a in actives),
    )


def _ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)
