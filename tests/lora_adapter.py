"""A LoRA adapter for the demo model, made at test time with peft (none small is available offline).

LoRA's B matrices start at zero (the adapter changes nothing); random ones from a fixed seed
make the adapter's greedy output differ from the base model's, reproducibly (scale 0.2: with 0.05,
in float32, the first prompt's output was the base model's).
"""

from __future__ import annotations

from pathlib import Path

ADAPTER = "smollm2-lora"
LORA_BASE = "smollm2-with-lora"  # the test repository's entry that serves it
# model.json keys of the test model that serves it: vLLM's own LoRA arguments, kept small
# (max_loras: engines/vllm/args.py gives a CPU one slot more than the adapters).
# max_loras 4: a CPU keeps one slot empty, and the runtime tests add two adapters to the declared one.
# float32: in bfloat16 (a CPU's default with bf16 instructions) a batch of base and adapter rows
# rounds unlike a lone request, and the greedy comparisons with vLLM offline flipped a token at times.
LORA_SETTINGS = {"enable_lora": True, "max_lora_rank": 8, "max_loras": 4, "dtype": "float32"}
# Loaded through the API at run time (test_lora_runtime), made with another seed than ADAPTER's.
RUNTIME_ADAPTER = "smollm2-lora-runtime"
RUNTIME_SEED = 1


def runtime_settings(allowed: Path, resolver: Path) -> dict:
    """The LoRA entry's opt-in to adapters at run time: from `allowed`, and unknown names from `resolver`."""
    return {"allow_runtime_lora_updating": True, "lora_allowed_paths": [str(allowed)], "lora_resolver": str(resolver)}


def build_adapter(model_dir: Path, dest: Path, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.2)
    peft_model.save_pretrained(dest)
    return dest
