"""Reference for the transformers engine: a static padded batch, and the engine without a server.

    python -m tools.hf_static_batch [--input-len 128] [--output-len 64] [--batch 16]

1. transformers' `generate` on one prompt alone vs `--batch` prompts in one static padded
   batch: no server, no arrivals, the ceiling a padded batch gives on this machine.
2. The engine itself (`HuggingFaceEngine`, continuous batching) at concurrency 1 and
   `--batch`, driven from asyncio: what Triton, the stub and the client add is what the
   served figures (`tools.bench --systems hf`) show beyond this.
Both greedy, random prompt ids, the engine's CPU kernels (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from triton_llm import hf_loading
from triton_llm.generation.engines.hf import attention
from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
from triton_llm.generation.engines.hf.linear import pack_linears
from triton_llm.generation.types import GenerateRequest
from triton_llm.settings import HfGenerationSettings
from triton_llm.tasks import Task


def static_batch(args: argparse.Namespace, ids: torch.Tensor) -> tuple[float, float]:
    # The engine's CPU defaults: the CPU's fast dtype, its attention and packed linears.
    model = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=hf_loading.cpu_dtype(), attn_implementation=attention.NAME
    )
    pack_linears(model.eval(), batch_hint=args.batch)

    def tokens_per_s(batch: torch.Tensor) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=args.output_len,
                                 min_new_tokens=args.output_len, do_sample=False, pad_token_id=0)  # fmt: skip
        return (out.shape[1] - batch.shape[1]) * out.shape[0] / (time.perf_counter() - started)

    tokens_per_s(ids[:1, :8])  # warm-up
    alone_runs = min(3, len(ids))
    alone = sum(tokens_per_s(ids[i : i + 1]) for i in range(alone_runs)) / alone_runs
    return alone, tokens_per_s(ids)


async def engine(args: argparse.Namespace, ids: torch.Tensor) -> tuple[float, float]:
    settings = HfGenerationSettings(model=args.model, max_num_seqs=max(64, args.batch))
    e = HuggingFaceEngine(settings, Task.TEXT_GENERATION, hf_loading.device(None))
    await e.start()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompts = [tokenizer.decode(row) for row in ids.tolist()]

    async def tokens_per_s(concurrency: int, count: int) -> float:
        gate, tokens = asyncio.Semaphore(concurrency), 0

        async def one(i: int) -> None:
            nonlocal tokens
            request = GenerateRequest(
                prompt=prompts[i % len(prompts)], stream=True, prepend_input=False,
                sampling={"max_tokens": args.output_len, "ignore_eos": True, "temperature": 0},
            )  # fmt: skip
            async with gate:
                async for chunk in e.generate(request, f"r{i}"):
                    tokens += sum(c.num_tokens for c in chunk.choices)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return tokens / (time.perf_counter() - started)

    await tokens_per_s(args.batch, args.batch)  # warm-up
    alone = await tokens_per_s(1, 3)
    batched = await tokens_per_s(args.batch, 3 * args.batch)
    await e.shutdown()
    return alone, batched


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=".cache/models/SmolLM2-135M-Instruct")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    vocab = AutoConfig.from_pretrained(args.model).vocab_size
    ids = torch.randint(100, vocab - 100, (args.batch, args.input_len))
    print(f"{args.input_len} in / {args.output_len} out, {args.batch} sequences, tok/s:")
    # The engine first: its thread must be the only one running torch ops (see engines/hf/batching.py).
    engine_figures = asyncio.run(engine(args, ids))
    for name, (alone, batched) in (
        ("engine, continuous batching", engine_figures),
        ("static padded batch (generate)", static_batch(args, ids)),
    ):
        print(f"  {name}: alone {alone:.1f}, {args.batch} at once {batched:.1f} ({batched / alone:.2f}x)")


if __name__ == "__main__":
    main()
