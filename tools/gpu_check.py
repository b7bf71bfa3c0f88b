"""The transformers engine on a GPU, without Triton: greedy parity with `generate`, and tokens/s.

    python tools/gpu_check.py [--model DIR] [--device cuda|cpu] [--json gpu_check.json]

For a CUDA machine with PyTorch and transformers (and pydantic, jinja2), no vLLM, no Triton,
no internet: copy this repository there (the engine is `triton_llm/`, imported from here)
with a model folder. Nothing is downloaded (HF_HUB_OFFLINE). Steps:

1. parity: each prompt through transformers' `generate(do_sample=False)` on the device, then
   through the engine (`HuggingFaceEngine`, as Triton's stub runs it: its device placement,
   its batcher) one request at a time, and all prompts at once (a padded batch); the first
   position where the token ids differ, per prompt. In `--parity-dtype` (float32 by default:
   bf16 rounding differs between a batch of 1 and a padded batch, float32's rarely does).
2. speed: the engine in the dtype it serves with (`--dtype`, default auto: the model's own
   on a GPU), random prompts of `--input-len` ids, `--output-len` tokens each (ignore_eos),
   at concurrency 1 and 16: output tokens/s and mean request latency.

Prints a table and writes the figures as JSON. `--random-weights` builds the model from the
folder's config.json with seeded random weights (needs only config and tokenizer files: for a
machine the weights cannot be copied to; speed is the architecture's, parity still compares
the engine with `generate` on the same weights). `--device cpu` runs the same checks here.
Never part of CI (docs/scaling.md, GPU check).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine, from this checkout
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no internet: never try the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHATS = [
    "Write a haiku about the sea.",
    "Explain what a hash table is in two sentences.",
    "Give me three tips for learning a new language.",
]
PLAIN = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away,"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    p.add_argument("--dtype", default="auto", help="the speed run's dtype (default: auto, as served)")
    p.add_argument("--parity-dtype", default="float32", help="the parity run's dtype (default: float32)")
    p.add_argument("--new-tokens", type=int, default=32, help="parity: greedy tokens per prompt")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights from config.json")
    p.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    return p.parse_args(argv)


def check_device(device: str) -> dict:
    import torch

    info = {"device": device, "torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"gpu_check: --device {device}, but torch sees no CUDA device (torch {torch.__version__})")
        index = torch.device(device).index or 0
        info.update(gpu=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                    gpu_memory_gib=round(torch.cuda.get_device_properties(index).total_memory / 2**30, 1))  # fmt: skip
    else:
        info.update(cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    import transformers

    info["transformers"] = transformers.__version__
    return info


def random_model(folder: Path, dest: Path) -> Path:
    """The folder's architecture with seeded random weights (std 0.1: std 0.02 gives near-tied logits)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.1)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(folder).save_pretrained(dest)
    return dest


def prompts(tokenizer) -> dict[str, list[int]]:
    out = {}
    for i, text in enumerate(CHATS):
        messages = [{"role": "user", "content": text}]
        out[f"chat{i}"] = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
                               ["input_ids"])  # fmt: skip
    for i, text in enumerate(PLAIN):
        out[f"plain{i}"] = tokenizer(text).input_ids
    return out


def by_generate(model_dir: Path, device: str, dtype: str, all_ids: dict[str, list[int]], new: int) -> dict:
    """transformers' own greedy `generate`, one prompt at a time, with the attention the engine follows."""
    import torch
    from transformers import AutoModelForCausalLM

    # The engine's CPU attention computes eager's bits (engines/hf/engine.py); on a GPU it keeps transformers' default.
    attn = "eager" if device == "cpu" else None
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), attn_implementation=attn)
    model = model.to(device).eval()
    out = {}
    with torch.inference_mode():
        for name, ids in all_ids.items():
            got = model.generate(torch.tensor([ids], device=device), max_new_tokens=new, do_sample=False)
            out[name] = got[0, len(ids) :].tolist()
    del model
    release(device)
    return out


def release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


async def start_engine(model_dir: Path, device: str, dtype: str, max_num_seqs: int):
    from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
    from triton_llm.settings import HfGenerationSettings, parse_settings
    from triton_llm.tasks import Task

    settings = parse_settings(HfGenerationSettings, {"model": str(model_dir), "dtype": dtype,
                                                     "max_num_seqs": max_num_seqs})  # fmt: skip
    engine = HuggingFaceEngine(settings, Task.TEXT_GENERATION, device)
    await engine.start()
    return engine


async def one(engine, request_id: str, ids: list[int], max_tokens: int, ignore_eos: bool = False):
    """The engine's token ids for one greedy request, and its latency."""
    from triton_llm.generation.types import GenerateRequest

    sampling = {"max_tokens": max_tokens, "temperature": 0, "ignore_eos": ignore_eos}
    request = GenerateRequest(prompt_ids=ids, prepend_input=False, sampling=sampling)
    started = time.perf_counter()
    chunks = [chunk async for chunk in engine.generate(request, request_id)]
    return chunks[-1].choices[0].token_ids or [], time.perf_counter() - started


async def parity(model_dir: Path, device: str, dtype: str, all_ids: dict[str, list[int]], new: int) -> dict:
    engine = await start_engine(model_dir, device, dtype, max_num_seqs=16)
    try:
        alone = {name: (await one(engine, f"a-{name}", ids, new))[0] for name, ids in all_ids.items()}
        together = await asyncio.gather(*(one(engine, f"t-{name}", ids, new) for name, ids in all_ids.items()))
        return {"alone": alone, "together": {name: got for name, (got, _) in zip(all_ids, together, strict=True)}}
    finally:
        await engine.shutdown()


async def speed(model_dir: Path, device: str, args: argparse.Namespace) -> dict:
    import torch

    levels = [int(c) for c in args.concurrency.split(",")]
    engine = await start_engine(model_dir, device, args.dtype, max_num_seqs=max(levels))
    vocab = engine._vocab_limit  # random ids below the vocabulary's largest
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, max(vocab - 100, 101), (max(levels) * 3, args.input_len), generator=generator).tolist()
    from triton_llm.hf_loading import torch_dtype

    out = {"dtype": str(torch_dtype(engine.settings, device))}  # `auto`: the CPU's fast dtype; on a GPU the config's
    try:
        await asyncio.gather(*(one(engine, f"w{i}", ids[i], 8, True) for i in range(max(levels))))  # warm-up
        for c in levels:
            gate, count = asyncio.Semaphore(c), 3 * c if c > 1 else 3

            async def gated(i: int, gate=gate, c=c):
                async with gate:
                    return await one(engine, f"c{c}-{i}", ids[i], args.output_len, True)

            started = time.perf_counter()
            results = await asyncio.gather(*(gated(i) for i in range(count)))
            wall = time.perf_counter() - started
            tokens = sum(len(got) for got, _ in results)
            out[f"c{c}"] = {"requests": count, "output_tokens": tokens, "seconds": round(wall, 2),
                            "tokens_per_s": round(tokens / wall, 1),
                            "mean_latency_s": round(sum(t for _, t in results) / count, 3)}  # fmt: skip
        if device.startswith("cuda"):
            out["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out
    finally:
        await engine.shutdown()


def first_diff(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def report(result: dict) -> str:
    lines = [f"gpu_check on {result['env'].get('gpu') or result['env'].get('cpu')} ({result['env']['device']}), "
             f"torch {result['env']['torch']}, transformers {result['env']['transformers']}, model {result['model']}"
             + (" (random weights)" if result["random_weights"] else ""),
             "", f"greedy parity ({result['parity_dtype']}, {result['new_tokens']} new tokens): first differing "
             "position, - = identical",
             "| prompt | tokens | engine alone | engine, all at once |", "|---|---|---|---|"]  # fmt: skip
    for name, row in result["parity"].items():
        cells = ["-" if d is None else str(d) for d in (row["alone"], row["together"])]
        lines.append(f"| {name} | {row['tokens']} | {cells[0]} | {cells[1]} |")
    s = result["speed"]
    lines += ["", f"speed ({s['dtype']}, {result['input_len']} in / {result['output_len']} out, ignore_eos)",
              "| concurrency | requests | output tok/s | mean latency s |", "|---|---|---|---|"]  # fmt: skip
    for key, row in s.items():
        if key.startswith("c") and isinstance(row, dict):
            lines.append(f"| {key[1:]} | {row['requests']} | {row['tokens_per_s']} | {row['mean_latency_s']} |")
    lines.append(f"\nparity: {'PASS' if result['parity_ok'] else 'FAIL'} (engine alone equal to generate)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [m for m in ("torch", "transformers", "pydantic", "jinja2") if _absent(m)]
    if missing:
        raise SystemExit(f"gpu_check: missing Python packages: {', '.join(missing)}")
    started = time.perf_counter()
    env = check_device(args.device)
    if not (args.model / "config.json").exists():
        raise SystemExit(f"gpu_check: {args.model} has no config.json (--model: a local model folder)")
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        model_dir = random_model(args.model, Path(tmp)) if args.random_weights else args.model
        from transformers import AutoTokenizer

        all_ids = prompts(AutoTokenizer.from_pretrained(model_dir))
        reference = by_generate(model_dir, args.device, args.parity_dtype, all_ids, args.new_tokens)
        engine_ids = asyncio.run(parity(model_dir, args.device, args.parity_dtype, all_ids, args.new_tokens))
        release(args.device)
        speed_figures = asyncio.run(speed(model_dir, args.device, args))
    rows = {name: {"tokens": len(ref), "alone": first_diff(engine_ids["alone"][name], ref),
                   "together": first_diff(engine_ids["together"][name], ref)}
            for name, ref in reference.items()}  # fmt: skip
    result = {"env": env, "model": str(args.model), "random_weights": args.random_weights,
              "parity_dtype": args.parity_dtype, "new_tokens": args.new_tokens, "parity": rows,
              "parity_ok": all(r["alone"] is None for r in rows.values()), "input_len": args.input_len,
              "output_len": args.output_len, "speed": speed_figures,
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(report(result))
    print(f"\n{result['seconds']} s; figures in {args.json}")
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["parity_ok"] else 1


def _absent(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


if __name__ == "__main__":
    sys.exit(main())
