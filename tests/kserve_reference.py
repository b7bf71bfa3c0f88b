"""KServe huggingfaceserver's predictions on the session's encoder models, recorded once into
tests/kserve_reference.json so that test_kserve_reference compares with them on every run (the
live comparison needs a KServe checkout, named by KSERVE_SOURCE, which CI has not).

    KSERVE_SOURCE=/path/to/kserve python -m tests.kserve_reference KSERVE_COMMIT

records them (tools/kserve_hf_reference.py runs KServe's HuggingfaceEncoderModel) with the
checkout's commit and a fingerprint of each model: its tensors and vocabulary. The models are
built from fixed seeds (tests/tiny_models.py) or shipped whole (MiniLM); a fingerprint that no
longer matches (another torch drawing other weights, say) makes the recording stale, and the
test says to record again rather than compare with predictions of other weights.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).with_name("kserve_reference.json")
# Texts of one token count per request for token classification: KServe predicts the padding
# of shorter texts too (serving/kserve_v1.py), which has no counterpart to compare.
SAME_LENGTH = ["the man went to the city", "she said that it was good"]
TEXTS = ["the man went to the city today", "she said that it was good", "house"]
FILL = ["the man went to the [MASK] today", "she said that [MASK] was [MASK]"]
CASES = [  # (served model, its folder: a bert_dirs key or "minilm", KServe's task, return_probabilities, texts)
    ("bert-seq-cls", "sequence_classification", "sequence_classification", False, TEXTS),
    ("bert-seq-cls-probs", "sequence_classification", "sequence_classification", True, TEXTS),
    ("bert-token-cls", "token_classification", "token_classification", True, SAME_LENGTH),
    ("bert-fill-mask", "fill_mask", "fill_mask", True, FILL),
    ("minilm", "minilm", "text_embedding", False, TEXTS),
]


def fingerprint(folder: Path) -> str:
    """sha256 of the model's tensors (names, dtypes, shapes, bytes, in name order) and vocabulary."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")):
        tensors = load_file(file)
        for name in sorted(tensors):
            t = tensors[name]
            digest.update(f"{name}:{t.dtype}:{t.shape}".encode())
            digest.update(t.tobytes())
    from transformers import AutoTokenizer

    digest.update(json.dumps(sorted(AutoTokenizer.from_pretrained(folder).get_vocab().items())).encode())
    return digest.hexdigest()


def folders(bert_dirs: dict[str, Path], minilm_dir: Path) -> list[Path]:
    return [minilm_dir if key == "minilm" else bert_dirs[key] for _, key, *_ in CASES]


def record(commit: str) -> dict:
    """KServe's predictions for CASES on freshly built models, written to FIXTURE."""
    from transformers import AutoTokenizer

    from tests.tiny_models import BERT_HEADS, build_tiny_bert
    from tools import kserve_hf_reference
    from tools.prepare_model import prepare, prepare_minilm

    root = Path(__file__).resolve().parent.parent / ".cache" / "models"
    source = AutoTokenizer.from_pretrained(prepare(root / "SmolLM2-135M-Instruct"))
    with tempfile.TemporaryDirectory() as scratch:  # built afresh, as the session builds them
        bert_dirs = {task: build_tiny_bert(Path(scratch) / task, source, task) for task in BERT_HEADS}
        dirs = folders(bert_dirs, prepare_minilm(root / "all-MiniLM-L6-v2").resolve())
        theirs = kserve_hf_reference.run(
            [{"model_dir": str(d), "task": c[2], "return_probabilities": c[3], "instances": c[4]}
             for c, d in zip(CASES, dirs, strict=True)]
        )  # fmt: skip
        prints = [fingerprint(d) for d in dirs]
    recorded: dict = {
        "kserve_commit": commit,
        "kserve_sdk": next(p for p in kserve_hf_reference.PINS if p.startswith("kserve==")),
        "cases": [
            {"model": c[0], "task": c[2], "return_probabilities": c[3], "instances": c[4],
             "fingerprint": f, "predictions": p}
            for c, f, p in zip(CASES, prints, theirs, strict=True)
        ],
    }  # fmt: skip
    cases = ",\n".join(json.dumps(c) for c in recorded.pop("cases"))  # a case a line
    FIXTURE.write_text(json.dumps(recorded)[:-1] + f', "cases": [\n{cases}\n]}}\n')
    return recorded


def load() -> dict:
    return json.loads(FIXTURE.read_text())


if __name__ == "__main__":
    record(sys.argv[1])
    print(f"{FIXTURE}: {len(load()['cases'])} cases")
