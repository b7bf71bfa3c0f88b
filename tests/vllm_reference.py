"""Greedy outputs of vLLM's offline `LLM.generate`: what the served model must reproduce.

Run as a script (vLLM's engine processes re-import `__main__`):
    python tests/vllm_reference.py MODEL_JSON_SETTINGS REQUESTS_JSON  ->  JSON on stdout
Each request is generated on its own, as the tests send them one at a time, so both sides
compute with the same batch shapes. A request's optional "lora" ({"name", "path"}) applies that
LoRA adapter (the settings then need `enable_lora`). Messages with content parts (images as data:
URLs) go through `LLM.chat`; a prompt's "images" (base64) are its `multi_modal_data`.
"""

import base64
import io
import json
import sys

from PIL import Image


def main() -> None:
    settings = json.loads(sys.argv[1])
    requests = json.loads(sys.argv[2])
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest
    from vllm.sampling_params import BeamSearchParams

    from triton_llm.generation.engines.vllm.args import engine_args
    from triton_llm.settings import VllmSettings, parse_settings

    llm = LLM(**engine_args(parse_settings(VllmSettings, settings)))
    tokenizer = llm.get_tokenizer()
    results = []
    adapters: dict[str, LoRARequest] = {}  # one int id per adapter, as the served engine keeps
    for req in requests:
        lora = None
        if "lora" in req:
            name = req["lora"]["name"]
            lora = adapters.setdefault(name, LoRARequest(name, len(adapters) + 1, req["lora"]["path"]))
        if "beam" in req:  # vLLM's offline beam search (LLM.beam_search): each best beam's new token ids
            out = llm.beam_search([{"prompt": req["prompt"]}], BeamSearchParams(**req["beam"]))[0]
            skip = len(tokenizer(req["prompt"]).input_ids)
            results.append({"beams": [list(beam.tokens[skip:]) for beam in out.sequences]})
            continue
        params = SamplingParams(**req["sampling"])
        if "messages" in req and any(isinstance(m["content"], list) for m in req["messages"]):
            # Content parts (images as data: URLs): vLLM's own chat renderer and media loading (LLM.chat).
            out = llm.chat(req["messages"], params, use_tqdm=False, lora_request=lora)[0]
            results.append(_result(out))
            continue
        if "messages" in req:
            ids = tokenizer.apply_chat_template(req["messages"], add_generation_prompt=True, tokenize=True)
            ids = list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)
            prompt = TokensPrompt(prompt_token_ids=ids)
        else:
            prompt = req["prompt"]
        if "images" in req:  # vllm_backend's `image` tensor: base64 images for the prompt's placeholders
            images = [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in req["images"]]
            prompt = {"prompt": prompt, "multi_modal_data": {"image": images}}
        out = llm.generate([prompt], params, use_tqdm=False, lora_request=lora)[0]
        results.append(_result(out))
    print("REFERENCE_JSON " + json.dumps(results))


def _result(out) -> dict:
    return {
        "text": out.outputs[0].text,
        "token_ids": list(out.outputs[0].token_ids),
        "num_input_tokens": len(out.prompt_token_ids),
        "num_output_tokens": len(out.outputs[0].token_ids),
        "finish_reason": out.outputs[0].finish_reason,
    }


if __name__ == "__main__":
    main()
