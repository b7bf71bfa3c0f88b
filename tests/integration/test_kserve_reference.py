"""v1 predict equals KServe's own Hugging Face runtime (huggingfaceserver's
HuggingfaceEncoderModel, run by tools/kserve_hf_reference.py) on the same tiny models and
texts, element for element: class ids and strings exactly, probabilities to 1e-4 (both round
to 4 decimals); embeddings to bfloat16's error (minilm is served in bfloat16 here).

huggingfaceserver is not on PyPI: the test needs a KServe checkout named by KSERVE_SOURCE and
is skipped without one. Slow: KServe's model loads in a process of its own (~15 s, plus ~30 s
for its packages once, cached in .cache/kserve-hf-deps).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tools import kserve_hf_reference

# Texts of one token count per request for token classification: KServe predicts the padding
# of shorter texts too (serving/kserve_v1.py), which has no counterpart to compare.
SAME_LENGTH = ["the man went to the city", "she said that it was good"]
TEXTS = ["the man went to the city today", "she said that it was good", "house"]
FILL = ["the man went to the [MASK] today", "she said that [MASK] was [MASK]"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(kserve_hf_reference.source() is None, reason="KSERVE_SOURCE names no KServe checkout"),
]


def _close(ours, theirs, tol: float) -> None:
    if isinstance(theirs, dict):
        assert set(map(str, theirs)) == set(ours)
        for k, v in theirs.items():
            _close(ours[str(k)], v, tol)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _close(a, b, tol)
    elif isinstance(theirs, float) or (isinstance(theirs, str) and isinstance(ours, str) and "." in theirs):
        assert abs(float(ours) - float(theirs)) <= tol, (ours, theirs)
    else:
        assert ours == theirs


def test_predict_equals_kserve_huggingfaceserver(frontend, bert_dirs, minilm_dir):
    cases = [  # (served model, its folder, KServe's task, return_probabilities, texts)
        ("bert-seq-cls", bert_dirs["sequence_classification"], "sequence_classification", False, TEXTS),
        ("bert-seq-cls-probs", bert_dirs["sequence_classification"], "sequence_classification", True, TEXTS),
        ("bert-token-cls", bert_dirs["token_classification"], "token_classification", True, SAME_LENGTH),
        ("bert-fill-mask", bert_dirs["fill_mask"], "fill_mask", True, FILL),
        ("minilm", minilm_dir, "text_embedding", False, TEXTS),
    ]
    theirs = kserve_hf_reference.run(
        [{"model_dir": str(d), "task": t, "return_probabilities": p, "instances": x} for _, d, t, p, x in cases]
    )
    for (model, _, task, _, texts), expected in zip(cases, theirs, strict=True):
        r = requests.post(f"{frontend.url}/v1/models/{model}:predict", json={"instances": texts}, timeout=120)
        assert r.status_code == 200, r.text
        ours = r.json()["predictions"]
        if task == "text_embedding":
            # minilm is served in bfloat16 (`auto` on a CPU with bf16 instructions), KServe's in float32.
            a, b = np.array(ours), np.array(expected)
            print(f"minilm vs KServe's float32: max |diff| {np.abs(a - b).max():.2e}")
            assert a.shape == b.shape and np.allclose(a, b, atol=1e-2), model
            assert (np.sum(a * b, axis=1) > 0.999).all(), model  # unit vectors: cosine similarity
        else:
            _close(ours, expected, 1e-4)
