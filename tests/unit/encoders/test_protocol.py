"""The encoder models' tensor protocol without Triton: texts and parameters into an `EncodeRequest`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from triton_llm.encoders.protocol import EncodeRequest, parse_request
from triton_llm.errors import InvalidInput


@pytest.mark.parametrize(
    "params,problem",
    [
        ({"dimensions": "3"}, None),
        ({"dimensions": 0}, "dimensions: must be an integer >= 1"),
        ({"dimensions": True}, "dimensions: must be an integer"),
        ({"truncate_prompt_tokens": 0}, "truncate_prompt_tokens: must be -1"),
        ({"truncate_prompt_tokens": -2}, "truncate_prompt_tokens: must be an integer >= -1"),
        ({"truncate": True}, "truncate: unknown parameter"),
    ],
)
def test_request_parameters(params, problem):
    if problem is None:
        assert EncodeRequest.parse(["a"], params).dimensions == 3
    else:
        with pytest.raises(InvalidInput, match=problem):
            EncodeRequest.parse(["a"], params)


def test_texts_come_as_the_batch_dimension_of_text_input():
    text_input = np.array([["héllo".encode()], [b"world"]], dtype=np.object_)  # Triton's [n, 1] bytes
    request = parse_request(text_input, json.dumps({"truncate_prompt_tokens": -1}))
    assert request == EncodeRequest(["héllo", "world"], truncate_prompt_tokens=-1)
    assert parse_request(np.array(["as str"], dtype=np.object_), None) == EncodeRequest(["as str"])
    assert parse_request(np.array([], dtype=np.object_), "{}") == EncodeRequest([])


def test_text_input_must_be_utf8():
    with pytest.raises(InvalidInput, match="text_input: is not valid UTF-8"):
        parse_request(np.array([[b"\xff\xfe"]], dtype=np.object_), None)
