"""One decode step of the transformers engine's model, per kernel variant, in one run (ratios hold on a busy machine).

Each variant is SmolLM2 loaded with a dtype, an attention implementation and packed linears
or not; a step is `rows` sequences of 200 cached tokens (left-padded past the first row, as
the batcher's cache is) decoding one token. The variants are interleaved round by round;
printed: the median CPU time (process, all threads) and wall time per step.

    python -m tools.hf_step_speed [--rows 1,16] [--rounds 11] [--variants float32:grouped_eager:pack,...]

A variant is `<dtype>:<attn_implementation>[:pack]` (float32 packing: `pack_float32_linears`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tools.hf_fidelity import MODEL
from triton_llm.generation.engines.hf import attention, linear

VARIANTS = (
    "float32:grouped_eager",
    "float32:grouped_eager:pack",
    "bfloat16:grouped_eager:pack",
    "bfloat16:sdpa:pack",
)
CACHED = 200


def load(variant: str):
    from transformers import AutoModelForCausalLM

    dtype, attn, *rest = variant.split(":")
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=getattr(torch, dtype), attn_implementation=attn).eval()
    if rest == ["pack"]:
        linear.pack_linears(model, batch_hint=16, float32=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1,16")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    from transformers import DynamicCache

    assert attention.NAME == "grouped_eager"  # registered on import
    models = {variant: load(variant) for variant in args.variants.split(",")}
    torch.manual_seed(0)
    with torch.inference_mode():
        for rows in map(int, args.rows.split(",")):
            ids = torch.randint(0, 40000, (rows, CACHED))
            mask = torch.ones(rows, CACHED, dtype=torch.long)
            mask[1:, : CACHED // 4] = 0
            caches = {}
            for variant, model in models.items():
                caches[variant] = DynamicCache()
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                model(input_ids=ids, attention_mask=mask, position_ids=position_ids, past_key_values=caches[variant])
            step_mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
            times: dict[str, list[tuple[float, float]]] = {v: [] for v in models}
            for _ in range(args.rounds):
                for variant, model in models.items():
                    for layer in caches[variant].layers:  # the same step again: drop the last one's column
                        layer.keys, layer.values = layer.keys[:, :, :CACHED], layer.values[:, :, :CACHED]
                    cpu, wall = time.process_time(), time.perf_counter()
                    model(
                        input_ids=ids[:, -1:], attention_mask=step_mask,
                        position_ids=step_mask.sum(-1, keepdim=True) - 1, past_key_values=caches[variant],
                    )  # fmt: skip
                    times[variant].append((time.process_time() - cpu, time.perf_counter() - wall))
            for variant, got in times.items():
                cpu_ms = statistics.median(t[0] for t in got) * 1e3
                wall_ms = statistics.median(t[1] for t in got) * 1e3
                print(f"rows {rows:2d}  {variant:30s} CPU {cpu_ms:7.1f} ms  wall {wall_ms:7.1f} ms")


if __name__ == "__main__":
    main()
