"""Sentence-transformers pooling read from a model folder's files, and applied to token embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from triton_llm.encoders.pooling import SentencePooling


def write_st_folder(root: Path, pooling: dict, modules: list[str]) -> Path:
    (root / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    entries = [
        {"idx": i, "name": str(i), "path": paths[m], "type": f"sentence_transformers.models.{m}"}
        for i, m in enumerate(modules)
    ]
    (root / "modules.json").write_text(json.dumps(entries))
    return root


def reader(root: Path):
    return lambda name: (root / name) if (root / name).is_file() else None


def test_pooling_config_old_and_new_keys(tmp_path):
    legacy = write_st_folder(
        tmp_path / "a", {"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}, ["Transformer", "Pooling"]
    )
    assert SentencePooling.from_model(reader(legacy)) == SentencePooling(modes=("cls", "max"), normalize=False)
    new = write_st_folder(tmp_path / "b", {"pooling_mode": "lasttoken"}, ["Transformer", "Pooling", "Normalize"])
    assert SentencePooling.from_model(reader(new)) == SentencePooling(modes=("lasttoken",), normalize=True)
    assert SentencePooling.from_model(reader(tmp_path)) is None  # not a sentence-transformers folder
    dense = write_st_folder(tmp_path / "c", {"pooling_mode": "mean"}, ["Transformer", "Pooling", "Dense"])
    with pytest.raises(ValueError, match=r"modules \['Dense'\] are not supported"):
        SentencePooling.from_model(reader(dense))


def test_pooling_modes_ignore_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 0.0], [1.0, 2.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    got = {m: SentencePooling(modes=(m,))(hidden, mask) for m in ("cls", "max", "mean", "lasttoken")}
    assert got["cls"].tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert got["max"].tolist() == [[3.0, 4.0], [7.0, 6.0]]
    assert np.allclose(got["mean"], [[2.0, 3.0], [13 / 3, 8 / 3]])
    assert got["lasttoken"].tolist() == [[3.0, 4.0], [1.0, 2.0]]
    unit = SentencePooling(normalize=True).finish(torch.tensor([[3.0, 4.0, 12.0]]), dimensions=2)
    assert unit.tolist() == [[0.6000000238418579, 0.800000011920929]]
