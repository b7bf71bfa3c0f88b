"""model.json as typed settings, one class per engine family: a bad value fails at load, naming its key.

model.json sits beside config.pbtxt (vllm_backend's convention) and holds vLLM's
`AsyncEngineArgs` keys, so an entry from Triton's vllm_backend moves over as it is; the
transformers engine and the encoder models read the same names where they mean the same
thing, and KServe's runtime arguments under KServe's names. Each field's docstring is its
documentation: docs/settings.md is rendered from these classes (triton_llm.settings_reference).

One module per use: `common` (every model's keys, parsing), `generation` (every generation
model's), `vllm`, `hf` and `encoders` (each family's own), `model_json` (reading the file) and
`families` (which class reads a model's model.json). A new key goes in the class of the models
that read it; its users import it from here.
"""

from triton_llm.settings.common import MODEL_JSON, Backend, DType, ModelSettings, keys, parse_settings, setting
from triton_llm.settings.encoders import EncoderSettings
from triton_llm.settings.families import FAMILIES, Typed, family_of, parse_model_json
from triton_llm.settings.generation import GenerationSettings
from triton_llm.settings.hf import HfGenerationSettings
from triton_llm.settings.model_json import MULTI_LORA_JSON, load_model_json
from triton_llm.settings.vllm import LoraModule, VllmSettings, vllm_engine_keys

__all__ = [
    "FAMILIES",
    "MODEL_JSON",
    "MULTI_LORA_JSON",
    "Backend",
    "DType",
    "EncoderSettings",
    "GenerationSettings",
    "HfGenerationSettings",
    "LoraModule",
    "ModelSettings",
    "Typed",
    "VllmSettings",
    "family_of",
    "keys",
    "load_model_json",
    "parse_model_json",
    "parse_settings",
    "setting",
    "vllm_engine_keys",
]
