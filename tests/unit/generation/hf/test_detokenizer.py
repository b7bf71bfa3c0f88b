import pytest

from triton_llm.generation.engines.hf.detokenizer import IncrementalDetokenizer, StopStrings

TEXTS = [
    "Hello, world! Voilà: 東京 is big 🎉🎉 and naïve café — ok.",
    "  leading spaces\n\nand\ttabs",
    "emoji 👩‍👩‍👧 family",
]


@pytest.fixture(scope="module")
def tokenizer(request):
    from transformers import AutoTokenizer

    from tests.servers import ROOT

    path = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"
    if not path.exists():
        pytest.skip("run `make setup` first")
    return AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("text", TEXTS)
def test_token_by_token_deltas_join_to_the_whole_decode(tokenizer, text):
    prompt = tokenizer("Say:").input_ids
    ids = tokenizer(text, add_special_tokens=False).input_ids
    d = IncrementalDetokenizer(tokenizer, prompt)
    deltas = [d.add([i]) for i in ids]
    assert "".join(deltas) == tokenizer.decode(ids)
    # No delta carries half a character.
    assert all("\ufffd" not in x for x in deltas)


def test_special_tokens_are_skipped_unless_asked(tokenizer):
    ids = tokenizer("hi", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert "".join(IncrementalDetokenizer(tokenizer, []).add([i]) for i in ids) == "hi"
    kept = IncrementalDetokenizer(tokenizer, [], skip_special_tokens=False)
    assert "".join(kept.add([i]) for i in ids) == "hi" + tokenizer.eos_token


def test_stop_string_across_deltas_is_cut_and_never_half_sent():
    s = StopStrings(["END"])
    sent = []
    for delta in ["abc E", "N", "D more"]:
        s.add(delta)
        sent.append(s.take(final=False))
    assert s.stopped and s.text == "abc "
    assert "".join(sent) + s.take(final=True) == "abc "
    assert not any("E" in x for x in sent)


def test_stop_string_included_when_asked_and_earliest_wins():
    s = StopStrings(["b", "cd"], include=True)
    s.add("xxcdyyb")
    assert s.text == "xxcd"


def test_without_stops_everything_goes_out_at_once():
    s = StopStrings([])
    s.add("abc")
    assert s.take(final=False) == "abc"
