"""A model's input tensors as the Python backend hands them over, built from plain values."""

from __future__ import annotations

import json

import numpy as np


def inputs(**values):
    """`get(name)` over the tensors: strings (dicts and lists as JSON) as one BYTES element,
    booleans as BOOL, `input_ids` lists as INT64, arrays as they are."""
    arrays = {}
    for name, value in values.items():
        if isinstance(value, np.ndarray):
            arrays[name] = value
            continue
        if name == "input_ids":
            arrays[name] = np.array(value, dtype=np.int64)
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        arrays[name] = np.array(
            [value.encode() if isinstance(value, str) else value], dtype=object if isinstance(value, str) else bool
        )
    return arrays.get
