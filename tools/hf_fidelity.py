"""Greedy fidelity of the transformers engine to transformers' own `generate`, kernel by kernel.

For each prompt, transformers' `generate(do_sample=False)` is the reference (one prompt,
no padding) with eager and with SDPA attention; each variant is then either `generate` on
a model with one of the engine's kernels switched on (the attention function, the packed
linears), or the engine's own batcher (`CausalBatcher`, one request at a time, as served).
Printed: the first generated position where a variant differs from each reference.

    python -m tools.hf_fidelity [--dtype bfloat16] [--max-new-tokens 48] [--variants gen:eager:pack,...]

A variant is `gen|batcher|together:<attn_implementation>[:pack]`; `together` submits all
prompts to the batcher at once (one padded batch: not a single request's arithmetic).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import torch

from triton_llm.generation.engines.hf import attention, linear
from triton_llm.generation.engines.hf.batching import CausalBatcher
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.scheduler import Sequence

MODEL = Path(".cache/models/SmolLM2-135M-Instruct")
CHATS = [
    "Write a haiku about the sea.",
    "Explain what a hash table is in two sentences.",
    "What is the boiling point of water in Fahrenheit?",
    "Give me three tips for learning a new language.",
]
PLAIN = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
    "The three laws of thermodynamics are",
]
# Longer than the default `max_num_batched_tokens`: prefilled in pieces by the engine.
ESSAY = (
    "The history of computing is a story of abstraction. Early machines were programmed by rewiring "
    "panels and setting switches; each new problem meant a new physical arrangement. Stored programs "
    "changed that: instructions became data, held in the same memory as the numbers they worked on. "
    "Assemblers gave names to instructions, compilers gave names to whole computations, and operating "
    "systems hid the machine behind files, processes and virtual memory. Each layer let people forget "
    "details that had once consumed them, and each layer also brought new failures, because the details "
    "had not gone away; they had only moved out of sight. Networks joined machines into systems whose "
    "parts fail independently, and distributed computing became the art of making many unreliable "
    "parts behave like one reliable whole. Today a single request to a web service may touch hundreds "
    "of machines, caches and queues, and still the engineer's task is the same as it was: to decide "
    "what can be forgotten safely, and to notice when it cannot."
)
LONG = {
    "long_chat": [{"role": "user", "content": "Summarise this text in one sentence:\n\n" + ESSAY}],
    "long_plain": ESSAY + " In short,",
}
REFERENCES = ("eager", "sdpa")
VARIANTS = (
    "gen:" + attention.NAME,
    "gen:eager:pack",
    "gen:sdpa:pack",
    "batcher:eager",
    "batcher:sdpa",
    "batcher:" + attention.NAME,
    "batcher:eager:pack",
    "batcher:sdpa:pack",
    "batcher:" + attention.NAME + ":pack",
)


def prompts(tokenizer: Any) -> dict[str, list[int]]:
    out = {}

    def chat(messages: list[dict]) -> list[int]:
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])

    for i, text in enumerate(CHATS):
        out[f"chat{i}"] = chat([{"role": "user", "content": text}])
    for i, text in enumerate(PLAIN):
        out[f"plain{i}"] = tokenizer(text).input_ids
    out["long_chat"] = chat(LONG["long_chat"])
    out["long_plain"] = tokenizer(LONG["long_plain"]).input_ids
    return out


def load(attn: str, dtype: torch.dtype, pack: bool) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=dtype, attn_implementation=attn).eval()
    if pack:
        linear.pack_linears(model, batch_hint=16, float32=True)
    return model


def by_generate(model: Any, ids: list[int], max_new: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False)
    return out[0, len(ids) :].tolist()


def by_batcher(
    make: Any, all_ids: dict[str, list[int]], max_new: int, eos: list[int], batched_tokens: int | None, together: bool
) -> dict[str, list[int]]:
    """The served path: the engine's batcher on its own thread, one request at a time (or all together)."""

    async def run() -> dict[str, list[int]]:
        cap = {"max_num_batched_tokens": batched_tokens} if batched_tokens else {}
        batcher = CausalBatcher(make, max_num_seqs=16, **cap)
        batcher.wait_loaded()
        loop = asyncio.get_running_loop()

        def submit(name: str, ids: list[int]) -> asyncio.Future:
            done: asyncio.Future = loop.create_future()
            seq = Sequence(name, ids, max_new, eos, HfSampling(temperature=0.0), stream=False)
            batcher.submit(seq, lambda got, end, err: end and done.set_result((got, err)))
            return done

        out = {}
        if together:
            futures = {name: submit(name, ids) for name, ids in all_ids.items()}
        for name, ids in all_ids.items():
            got, err = await (futures[name] if together else submit(name, ids))
            assert err is None, err
            out[name] = got
        batcher.stop()
        return out

    return asyncio.run(run())


def first_diff(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--references", default=",".join(REFERENCES), help="generate's attention implementations")
    parser.add_argument("--prompts", default="", help="names, comma-separated: chat0..3, plain0..3, long_chat/plain")
    parser.add_argument("--batched-tokens", type=int, default=0, help="the batcher's max_num_batched_tokens (0: none)")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    dtype = getattr(torch, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    all_ids = prompts(tokenizer)
    if args.prompts:
        all_ids = {name: all_ids[name] for name in args.prompts.split(",")}
    print({name: len(ids) for name, ids in all_ids.items()}, "prompt tokens")
    eos = [tokenizer.eos_token_id]
    outputs: dict[str, dict[str, list[int]]] = {}
    seconds: dict[str, float] = {}
    references = args.references.split(",")
    for variant in [*(f"gen:{r}" for r in references), *args.variants.split(",")]:
        path, attn, *rest = variant.split(":")
        pack = rest == ["pack"]
        start = time.process_time()
        if path == "gen":
            model = load(attn, dtype, pack)
            outputs[variant] = {name: by_generate(model, ids, args.max_new_tokens) for name, ids in all_ids.items()}
        else:
            make = lambda a=attn, p=pack: load(a, dtype, p)  # noqa: E731
            cap = args.batched_tokens or None
            outputs[variant] = by_batcher(make, all_ids, args.max_new_tokens, eos, cap, together=path == "together")
        seconds[variant] = time.process_time() - start
    # EOS ends the batcher's sequence; generate stops there too for one prompt.
    names = list(all_ids)
    print(f"dtype {args.dtype}, {args.max_new_tokens} new tokens; first differing position (- = identical)")
    print("| variant | vs | " + " | ".join(names) + " | differ | CPU s |")
    print("|---" * (len(names) + 4) + "|")
    for variant, got in outputs.items():
        for ref in references:
            if variant == f"gen:{ref}":
                continue
            diffs = [first_diff(got[n], outputs[f"gen:{ref}"][n]) for n in names]
            cells = ["-" if d is None else str(d) for d in diffs]
            count = sum(d is not None for d in diffs)
            print(f"| {variant} | {ref} | " + " | ".join(cells) + f" | {count}/{len(names)} | {seconds[variant]:.1f} |")


if __name__ == "__main__":
    main()
