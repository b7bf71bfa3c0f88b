"""Reference for the transformers engine: `generate` on one prompt alone vs 16 in one static padded batch.

    python -m tools.hf_static_batch [--input-len 128] [--output-len 64]

No server, no arrivals: the ceiling a padded batch gives on this machine, against which the
engine's continuous batching is compared (docs/benchmarks.md). Greedy, random prompt ids.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM

from triton_llm.config import cpu_dtype


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=".cache/models/SmolLM2-135M-Instruct")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    # The engine's CPU defaults: the CPU's fast dtype, eager attention.
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=cpu_dtype(), attn_implementation="eager").eval()
    ids = torch.randint(100, model.config.vocab_size - 100, (args.batch, args.input_len))

    def tokens_per_s(batch: torch.Tensor) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=args.output_len,
                                 min_new_tokens=args.output_len, do_sample=False, pad_token_id=0)  # fmt: skip
        return (out.shape[1] - batch.shape[1]) * out.shape[0] / (time.perf_counter() - started)

    tokens_per_s(ids[:1, :8])  # warm-up
    alone = sum(tokens_per_s(ids[i : i + 1]) for i in range(3)) / 3
    batched = tokens_per_s(ids)
    print(f"{args.input_len} in / {args.output_len} out: alone {alone:.1f} tok/s, static batch of {args.batch} "
          f"{batched:.1f} tok/s ({batched / alone:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
