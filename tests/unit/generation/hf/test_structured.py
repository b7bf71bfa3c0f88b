"""Structured outputs on the transformers engine (engines/hf/structured.py): vLLM's constraints checked as vLLM
checks them, masks and termination with SmolLM2's real tokenizer, and SmolLM2 itself through the
engine's batcher (greedy and sampled rows, n > 1, mixed with unconstrained rows)."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import pytest
import torch

pytest.importorskip("xgrammar")

from triton_llm.errors import InvalidInput  # noqa: E402
from triton_llm.generation.engines.hf import structured  # noqa: E402
from triton_llm.generation.engines.hf.structured import FIELD, Constraint, Grammars, RowGrammar, mask  # noqa: E402

pytestmark = pytest.mark.slow

VOCAB = 49152  # SmolLM2's config.vocab_size: the logits' width
EOS = 2  # <|im_end|>


@pytest.fixture(scope="module")
def grammars(tokenizer) -> Grammars:
    return Grammars(tokenizer, vocab_size=VOCAB)


@pytest.fixture(params=["vllm", "xgrammar alone"])
def checks(request, monkeypatch):
    """Both ways of checking a constraint: vLLM's own checks, and xgrammar's where vLLM is absent."""
    if request.param == "vllm":
        pytest.importorskip("vllm")
    else:
        monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm...` raises ImportError
    structured._vllm_helpers.cache_clear()
    structured._vllm_check.cache_clear()
    yield request.param
    structured._vllm_helpers.cache_clear()
    structured._vllm_check.cache_clear()


def allowed(grammar: RowGrammar) -> list[int]:
    logits = mask(torch.zeros(1, VOCAB), [grammar])
    return (logits[0] == 0).nonzero().view(-1).tolist()


def test_a_regex_allows_only_its_tokens_then_only_eos_and_eos_ends_it(grammars, tokenizer, checks):
    grammar = RowGrammar(grammars.compile({"regex": "[0-9]{2}"}), [EOS])
    first = allowed(grammar)
    assert first and all(re.fullmatch("[0-9]{1,2}", tokenizer.decode([t])) for t in first)
    digit = tokenizer.convert_tokens_to_ids("7")
    assert grammar.accept(digit) is False
    assert grammar.accept(digit) is False
    assert allowed(grammar) == [EOS]
    assert grammar.accept(EOS) is True  # terminated: the sequence stops


def test_eos_is_allowed_where_the_grammar_can_end_and_continue(grammars, tokenizer):
    grammar = RowGrammar(grammars.compile({"regex": "a+"}), [EOS])
    assert EOS not in allowed(grammar)
    grammar.accept(tokenizer.convert_tokens_to_ids("a"))
    ids = allowed(grammar)
    assert EOS in ids and tokenizer.convert_tokens_to_ids("a") in ids


def test_without_a_stop_token_the_grammar_ends_where_it_can(grammars, tokenizer):
    grammar = RowGrammar(grammars.compile({"regex": "ab"}), [])
    assert grammar.accept(tokenizer.convert_tokens_to_ids("ab")) is True


def test_a_token_the_mask_forbids_is_a_server_error_of_that_row(grammars, tokenizer):
    grammar = RowGrammar(grammars.compile({"regex": "a"}), [EOS])
    with pytest.raises(RuntimeError, match="the grammar cannot go on"):
        grammar.accept(tokenizer.convert_tokens_to_ids("b"))


def test_only_constrained_rows_are_masked_in_float32_whatever_the_logits_width(grammars):
    logits = torch.zeros(3, VOCAB, dtype=torch.bfloat16)
    grammar = RowGrammar(grammars.compile({"choice": ["yes", "no"]}), [EOS])
    out = mask(logits, [None, grammar, None])
    assert out.dtype == torch.float32
    assert (out[0] == 0).all() and (out[2] == 0).all()
    assert 0 < int((out[1] == 0).sum()) < 10
    assert mask(logits, [None, None, None]) is logits  # nothing to do: untouched
    narrow = mask(torch.zeros(1, 1000), [grammar])  # logits narrower than the vocabulary: cut
    assert narrow.shape == (1, 1000) and bool((narrow[0] == 0).any()) == any(t < 1000 for t in allowed(grammar))


@pytest.mark.parametrize(
    "value,kind",
    [
        ({"json": {"type": "object", "properties": {"a": {"type": "integer"}}}}, "json"),
        ('{"json": "{\\"type\\": \\"string\\"}"}', "json"),  # vllm_backend sends it as text
        ({"json_object": True}, "json_object"),
        ({"regex": "[a-z]+"}, "regex"),
        ({"choice": ["a", 'b "quoted"\n']}, "grammar"),
        ({"grammar": 'root ::= "x" | "y"'}, "grammar"),
        ({"grammar": 'start: "x" | "y"'}, "grammar"),  # Lark, as vLLM detects it
        ({"regex": "a", "disable_any_whitespace": True, "whitespace_pattern": None}, "regex"),
        ({"structural_tag": json.dumps({"type": "structural_tag", "format": {"type": "const_string", "value": "hi"}})},
         "structural_tag"),
        ({"structural_tag": json.dumps({"structures": [{"begin": "<f>", "schema": {"type": "object"}, "end": "</f>"}],
                                        "triggers": ["<f>"]})}, "structural_tag"),  # vLLM's older form
    ],
)  # fmt: skip
def test_each_constraint_compiles(grammars, checks, value, kind):
    assert structured.parse(value, None if checks != "vllm" else grammars._tokenizer).kind == kind
    assert grammars.compile(value) is not None


def test_choice_becomes_the_grammar_vllm_makes(grammars, checks):
    choices = ["yes", 'say "hi"', "back\\slash", "tab\tnew\nline", "émoji 😀", "\x01\x7f"]
    constraint = structured.parse({"choice": choices}, grammars._tokenizer)
    assert constraint.kind == "grammar"
    if checks == "vllm":
        from vllm.v1.structured_output.utils import choice_as_grammar

        assert constraint.spec == choice_as_grammar(choices)
    # Whichever wrote it, the grammar accepts exactly the choices.
    import xgrammar as xgr

    for choice in choices:
        matcher = xgr.GrammarMatcher(grammars.compile({"choice": choices}))
        assert matcher.accept_string(choice) and matcher.is_completed(), choice


@pytest.mark.parametrize(
    "value,field",
    [
        ({"regex": "("}, FIELD),
        ({"json": "not json"}, FIELD),
        ({"json": {"type": "no-such-type"}}, FIELD),
        ({"grammar": "root ::= undefined_rule"}, FIELD),
        ({"grammar": ""}, FIELD),
        ({"regex": "a", "choice": ["b"]}, FIELD),
        ({}, FIELD),
        ({"choice": []}, FIELD),
        ({"json_object": False}, FIELD),
        ({"regex": "a\x00"}, FIELD),
        ({"structural_tag": "not json"}, FIELD),
        ({"structural_tag": '{"structures": [{"begin": "<f>"}], "triggers": ["<f>"]}'}, FIELD),
        ({"grammar": "start: start"}, FIELD),  # compiles, and allows nothing
        ({"regexp": "a"}, f"{FIELD}.regexp"),
        ("[1, 2]", FIELD),
        ("{not json", FIELD),
        ({"regex": 5}, f"{FIELD}.regex"),
    ],
)
def test_client_mistakes_are_invalid_input_naming_the_field(grammars, checks, value, field):
    with pytest.raises(InvalidInput) as info:
        grammars.compile(value)
    assert info.value.field.startswith(field)
    assert info.value.problem


def test_a_schema_feature_xgrammar_cannot_enforce_is_refused_as_vllm_refuses_it(grammars, checks):
    if checks != "vllm":
        pytest.skip("vLLM's list of unsupported schema features")
    with pytest.raises(InvalidInput, match="not supported by xgrammar"):
        grammars.compile({"json": {"type": "integer", "multipleOf": 3}})


def test_compiled_grammars_are_cached_by_constraint(tokenizer, monkeypatch):
    monkeypatch.setattr(structured, "_CACHE_SIZE", 2)
    grammars = Grammars(tokenizer, vocab_size=VOCAB)
    calls = []
    real = structured._compile
    monkeypatch.setattr(structured, "_compile", lambda c, k: calls.append(k) or real(c, k))
    first = grammars.compile({"regex": "a"})
    assert grammars.compile('{"regex": "a"}') is first and len(calls) == 1
    grammars.compile({"regex": "b"})
    grammars.compile({"regex": "c"})  # evicts "a", the least recently used
    grammars.compile({"regex": "a"})
    assert [c.spec for c in calls] == ["a", "b", "c", "a"]
    assert list(grammars._cache) == [Constraint("regex", "c"), Constraint("regex", "a")]


def test_without_xgrammar_a_constraint_is_refused_naming_the_field(tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "xgrammar", None)
    with pytest.raises(InvalidInput, match="needs xgrammar") as info:
        Grammars(tokenizer, vocab_size=VOCAB).compile({"regex": "a"})
    assert info.value.field == FIELD


# -- SmolLM2 through the engine and its batcher ------------------------------------------------


@pytest.fixture(scope="module")
def engine(model_dir):
    from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
    from triton_llm.settings import HfGenerationSettings, parse_settings
    from triton_llm.tasks import Task

    settings = parse_settings(HfGenerationSettings, {"model": str(model_dir), "dtype": "float32", "max_num_seqs": 8})
    loop = asyncio.new_event_loop()
    hf = HuggingFaceEngine(settings, Task.TEXT_GENERATION, "cpu")
    loop.run_until_complete(hf.start())
    yield hf, loop
    loop.run_until_complete(hf.shutdown())
    loop.close()


def run(engine, *requests):
    """Generate the requests together (one batch); each one's final (text, tokens, finish) per choice."""
    from triton_llm.generation.types import GenerateRequest

    hf, loop = engine

    async def one(i: int, sampling: dict) -> list[tuple[str, int, str]]:
        request = GenerateRequest(messages=[{"role": "user", "content": "Give me a number."}], sampling=sampling)
        chunks = [chunk async for chunk in hf.generate(request, f"r{i}")]
        return [(c.text, c.num_tokens, c.finish_reason) for c in chunks[-1].choices]

    async def all_of():
        return await asyncio.gather(*(one(i, s) for i, s in enumerate(requests)))

    return loop.run_until_complete(all_of())


def test_constrained_rows_in_one_batch_follow_their_grammars(engine):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    greedy, sampled, free, cut = run(
        engine,
        {"temperature": 0, "max_tokens": 20, "structured_outputs": {"regex": "[0-9]{3}"}},
        {"temperature": 1.0, "top_p": 0.9, "n": 3, "max_tokens": 40, "structured_outputs": {"json": schema}},
        {"temperature": 0, "max_tokens": 5},
        {"temperature": 0, "max_tokens": 2, "structured_outputs": {"regex": "[0-9]{3}"}},
    )
    [(text, tokens, finish)] = greedy
    assert re.fullmatch("[0-9]{3}", text) and finish == "stop" and tokens >= 2  # the digits and EOS
    for text, _, finish in sampled:
        assert finish == "stop" and isinstance(json.loads(text)["ok"], bool), text
    assert free[0][1:] == (5, "length")
    [(text, tokens, finish)] = cut
    assert (tokens, finish) == (2, "length") and re.fullmatch("[0-9]{1,3}", text)


def test_a_choice_with_ignore_eos_still_ends_where_the_grammar_does(engine):
    choice = {"choice": ["yes", "no"]}
    [[(text, _, finish)]] = run(
        engine, {"temperature": 0, "max_tokens": 20, "ignore_eos": True, "structured_outputs": choice}
    )
    assert text in ("yes", "no") and finish == "stop"


def test_a_bad_constraint_fails_the_request_and_the_engine_keeps_serving(engine):
    with pytest.raises(InvalidInput):
        run(engine, {"temperature": 0, "max_tokens": 4, "structured_outputs": {"regex": "("}})
    [[(_, tokens, _)]] = run(engine, {"temperature": 0, "max_tokens": 3})
    assert tokens == 3


def test_a_constrained_row_joining_a_running_batch_and_a_stop_string_and_a_cancel(engine):
    from triton_llm.generation.types import GenerateRequest

    hf, loop = engine
    messages = [{"role": "user", "content": "Write a story."}]

    async def scenario():
        free = GenerateRequest(messages=messages, stream=True, sampling={"temperature": 0, "max_tokens": 30})
        running = hf.generate(free, "free")
        await running.__anext__()
        await running.__anext__()  # generating: the constrained requests join its batch
        digits = {"regex": "[0-9]{3}-[0-9]{3}"}
        stop = {"temperature": 0, "max_tokens": 20, "stop": ["-"], "structured_outputs": digits}
        stopped = GenerateRequest(messages=messages, sampling=stop)
        letters = {"max_tokens": 200, "structured_outputs": {"regex": "[a-z]{300}"}}
        cancelled = hf.generate(GenerateRequest(messages=messages, stream=True, sampling=letters), "cancelled")
        await cancelled.__anext__()
        await cancelled.aclose()  # as the runner cancels: the engine drops the row
        [out] = [chunk async for chunk in hf.generate(stopped, "stopped")][-1].choices
        rest = [chunk async for chunk in running]
        return out, rest[-1].choices[0].finish_reason

    out, free_finish = loop.run_until_complete(scenario())
    assert re.fullmatch("[0-9]{3}", out.text) and out.finish_reason == "stop"
    assert free_finish == "length"
    assert hf.num_unfinished() == 0
