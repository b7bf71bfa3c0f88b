"""Which task a model serves and which engine serves it, from model.json's settings and the model's config."""

import pytest
from transformers import LlamaConfig, T5Config

from triton_llm.errors import SettingError
from triton_llm.settings import ModelSettings
from triton_llm.tasks import ENCODER_TASKS, GENERATION_TASKS, Task, resolve_backend, resolve_task

LLAMA = LlamaConfig(architectures=["LlamaForCausalLM"])
T5 = T5Config(architectures=["T5ForConditionalGeneration"])
CUSTOM = LlamaConfig(architectures=["MyNewModelForCausalLM"])


def settings(**values) -> ModelSettings:
    return ModelSettings(model="m", **values)


def test_task_comes_from_the_config():
    assert resolve_task(settings(), LLAMA) is Task.TEXT_GENERATION
    assert resolve_task(settings(), T5) == "text2text_generation"  # a str enum: model.json's strings compare equal


def test_auto_asks_vllm_which_architectures_it_implements():
    assert resolve_backend(settings(), LLAMA, Task.TEXT_GENERATION) == "vllm"
    assert resolve_backend(settings(backend="auto"), T5, Task.TEXT2TEXT_GENERATION) == "huggingface"
    assert resolve_backend(settings(), CUSTOM, Task.TEXT_GENERATION) == "huggingface"


def test_an_explicit_backend_wins_or_fails_clearly():
    assert resolve_backend(settings(backend="huggingface"), LLAMA, Task.TEXT_GENERATION) == "huggingface"
    with pytest.raises(SettingError, match="backend 'vllm' cannot serve") as error:
        resolve_backend(settings(backend="vllm"), T5, Task.TEXT2TEXT_GENERATION)
    assert error.value.key == "backend"


@pytest.mark.parametrize(
    "task,config,problem",
    [
        ("text2text_generation", LLAMA, "needs an encoder-decoder model"),
        ("text_generation", T5, "needs a decoder-only model"),
    ],
)
def test_impossible_tasks_are_refused(task, config, problem):
    with pytest.raises(SettingError, match=problem) as error:
        resolve_task(settings(task=task), config)
    assert error.value.key == "task"


def test_encoder_tasks_come_from_the_architecture_or_the_folder():
    from transformers import BertConfig

    for arch, task in [
        ("BertForMaskedLM", "fill_mask"),
        ("BertForTokenClassification", "token_classification"),
        ("DistilBertForSequenceClassification", "sequence_classification"),
    ]:
        assert resolve_task(settings(), BertConfig(architectures=[arch])) == task
    # all-MiniLM-L6-v2 says BertModel; its modules.json says it is an embedding model.
    minilm = BertConfig(architectures=["BertModel"])
    assert resolve_task(settings(), minilm, sentence_transformers=True) == "text_embedding"
    with pytest.raises(SettingError, match="cannot tell the task"):
        resolve_task(settings(), minilm)


def test_each_runner_refuses_the_other_runners_tasks():
    with pytest.raises(SettingError, match="served by triton_llm.encoders.runner"):
        resolve_task(settings(task="fill_mask"), LLAMA, served=GENERATION_TASKS)
    with pytest.raises(SettingError, match="served by triton_llm.generation.runner"):
        resolve_task(settings(), LLAMA, served=ENCODER_TASKS)
    with pytest.raises(SettingError, match="backend 'vllm' cannot serve"):
        resolve_backend(settings(backend="vllm"), LLAMA, Task.TEXT_EMBEDDING)


def test_an_image_text_to_text_model_is_text_generation_on_either_engine():
    from types import SimpleNamespace

    from triton_llm.settings import ModelSettings
    from triton_llm.tasks import infer_task, resolve

    vlm = SimpleNamespace(
        architectures=["Idefics3ForConditionalGeneration"], model_type="idefics3", vision_config={"hidden_size": 32}
    )
    assert infer_task(vlm) == "text_generation"
    assert resolve(ModelSettings(model="m"), vlm) == ("text_generation", "vllm")  # vLLM implements Idefics3
    # transformers' AutoModelForImageTextToText loads it: the transformers engine serves its images.
    assert resolve(ModelSettings(model="m", backend="huggingface"), vlm) == ("text_generation", "huggingface")
    unknown = SimpleNamespace(architectures=["NoSuchVlmForConditionalGeneration"], model_type="no-such-vlm",
                              vision_config={"hidden_size": 32})  # fmt: skip
    with pytest.raises(SettingError, match="no image-text-to-text class"):
        resolve(ModelSettings(model="m", backend="huggingface"), unknown)
    with pytest.raises(SettingError, match="neither vLLM here nor transformers"):
        resolve(ModelSettings(model="m"), unknown)
