import pytest
from transformers import LlamaConfig, T5Config

from triton_llm.tasks import resolve_backend, resolve_task

LLAMA = LlamaConfig(architectures=["LlamaForCausalLM"])
T5 = T5Config(architectures=["T5ForConditionalGeneration"])
CUSTOM = LlamaConfig(architectures=["MyNewModelForCausalLM"])


def test_task_comes_from_the_config():
    assert resolve_task({}, LLAMA) == "text_generation"
    assert resolve_task({}, T5) == "text2text_generation"


def test_auto_asks_vllm_which_architectures_it_implements():
    assert resolve_backend({}, LLAMA, "text_generation") == "vllm"
    assert resolve_backend({"backend": "auto"}, T5, "text2text_generation") == "huggingface"
    assert resolve_backend({}, CUSTOM, "text_generation") == "huggingface"


def test_an_explicit_backend_wins_or_fails_clearly():
    assert resolve_backend({"backend": "huggingface"}, LLAMA, "text_generation") == "huggingface"
    with pytest.raises(ValueError, match="backend 'vllm' cannot serve"):
        resolve_backend({"backend": "vllm"}, T5, "text2text_generation")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend({"backend": "tgi"}, LLAMA, "text_generation")


@pytest.mark.parametrize(
    "task,config,problem",
    [
        ("text2text_generation", LLAMA, "needs an encoder-decoder model"),
        ("text_generation", T5, "needs a decoder-only model"),
        ("summarize", LLAMA, "task must be one of"),
    ],
)
def test_impossible_tasks_are_refused(task, config, problem):
    with pytest.raises(ValueError, match=problem):
        resolve_task({"task": task}, config)


def test_encoder_tasks_come_from_the_architecture_or_the_folder():
    from transformers import BertConfig

    for arch, task in [
        ("BertForMaskedLM", "fill_mask"),
        ("BertForTokenClassification", "token_classification"),
        ("DistilBertForSequenceClassification", "sequence_classification"),
    ]:
        assert resolve_task({}, BertConfig(architectures=[arch])) == task
    # all-MiniLM-L6-v2 says BertModel; its modules.json says it is an embedding model.
    assert resolve_task({}, BertConfig(architectures=["BertModel"]), sentence_transformers=True) == "text_embedding"
    with pytest.raises(ValueError, match="cannot tell the task"):
        resolve_task({}, BertConfig(architectures=["BertModel"]))


def test_each_runner_refuses_the_other_runners_tasks():
    from triton_llm.tasks import ENCODER_TASKS, GENERATION_TASKS

    with pytest.raises(ValueError, match="served by triton_llm.encoders.runner"):
        resolve_task({"task": "fill_mask"}, LLAMA, served=GENERATION_TASKS)
    with pytest.raises(ValueError, match="served by triton_llm.generation.runner"):
        resolve_task({}, LLAMA, served=ENCODER_TASKS)
    with pytest.raises(ValueError, match="backend 'vllm' cannot serve"):
        resolve_backend({"backend": "vllm"}, LLAMA, "text_embedding")
