"""make-repo --instance-count: Triton's instance_group count in config.pbtxt, for generation and encoder entries.

Real model folders (the demo's SmolLM2 and MiniLM); config.pbtxt is read back by its directives.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.cli.test_make_repo import directives, run


def instance_group(config_pbtxt) -> list[tuple[int, str]]:
    """(count, kind) of each instance_group entry."""
    text = " ".join(directives(config_pbtxt))
    return [(int(c), k) for c, k in re.findall(r"\{\s*count:\s*(\d+),\s*kind:\s*(KIND_\w+)\s*\}", text)]


@pytest.mark.parametrize("kind", ["KIND_CPU", "KIND_GPU", "KIND_MODEL"])
def test_generation_entry_gets_n_instances_of_the_kind(capsys, tmp_path, model_dir, kind):
    rc, _, err = run(capsys, "--model_dir", model_dir, "--model_name", "smol", "--repository", tmp_path,
                     "--instance-count", 2, "--instance_kind", kind)  # fmt: skip
    assert rc == 0, err
    assert instance_group(tmp_path / "smol" / "config.pbtxt") == [(2, kind)]
    # Still decoupled, unbatched: each instance is one engine that batches on its own.
    lines = directives(tmp_path / "smol" / "config.pbtxt")
    assert "model_transaction_policy { decoupled: true }" in lines and "max_batch_size: 0" in lines


def test_encoder_entry_and_the_underscore_spelling(capsys, tmp_path, minilm_dir):
    rc, _, err = run(capsys, "--model_dir", minilm_dir, "--model_name", "mini", "--repository", tmp_path,
                     "--instance_count", 3, "--instance_kind", "KIND_CPU")  # fmt: skip
    assert rc == 0, err
    assert instance_group(tmp_path / "mini" / "config.pbtxt") == [(3, "KIND_CPU")]


def test_default_is_one_instance(capsys, tmp_path, model_dir):
    assert run(capsys, "--model_dir", model_dir, "--model_name", "smol", "--repository", tmp_path)[0] == 0
    assert instance_group(tmp_path / "smol" / "config.pbtxt") == [(1, "KIND_MODEL")]


@pytest.mark.parametrize("count", ["0", "-1"])
def test_a_count_below_one_is_refused_by_name_and_writes_nothing(capsys, tmp_path, model_dir, count):
    rc, _, err = run(capsys, "--model_dir", model_dir, "--repository", tmp_path / "repo", "--instance-count", count)
    assert rc == 2
    assert err.startswith("make_repo: error: --instance-count: must be at least 1"), err
    assert not (tmp_path / "repo").exists()
