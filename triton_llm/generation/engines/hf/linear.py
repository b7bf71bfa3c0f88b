"""Linear layers with their weights packed once for oneDNN, for CPUs.

`nn.Linear` on a CPU hands oneDNN the weight in PyTorch's layout, and oneDNN reorders it
into its blocked layout on every call. Doing that once at load is what vLLM's CPU backend
and PyTorch's own inductor (freezing) do, through the same operators used here. Measured
on this 2-core AVX-512 CPU, SmolLM2's layers at 16 rows: 542 -> 414 us per decoder layer
and 5.4 -> 3.2 ms for the LM head (17.9 -> 6.0 ms in float32).

Only bfloat16 weights are packed by default: there the results are bit-identical (oneDNN runs
either way; tests/unit/generation/test_hf_kernels.py on SmolLM2's shapes), so greedy output still equals
transformers' own. In float32 `nn.Linear` runs MKL, whose sums differ from oneDNN's in the
last bits (both within 1e-6 of float64): packing float32 (`pack_float32_linears`) kept
greedy parity with float32 `generate` on all 10 prompts of tools/hf_fidelity (48 tokens),
but is not the same arithmetic, so it is opt-in. It is for CPUs without bf16: here the LM head
of a 16-row step took 55 -> 16 ms of CPU packed, a whole step 247 -> 169 ms (16 rows) and
111 -> 87 ms (1 row; `python -m tools.hf_step_speed`, same-run medians on a busy machine).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """`nn.Linear` for inference, with the weight in oneDNN's layout."""

    def __init__(self, linear: nn.Linear, batch_hint: int):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), batch_hint)
        self.register_buffer("packed_weight", packed, persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach(), persistent=False)
        # Some models read `weight.dtype` (T5 casts to it); the values live in packed_weight.
        self.weight = torch.empty_like(linear.weight, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pack_linears(model: nn.Module, batch_hint: int, float32: bool = False) -> int:
    """Replace the model's CPU `nn.Linear`s by `PackedLinear`s; returns how many.

    Nothing is replaced for other dtypes (float32 only if asked), or where this PyTorch build cannot pack.
    """
    dtype = next(model.parameters()).dtype
    if dtype not in (torch.bfloat16, *([torch.float32] if float32 else [])) or not _packing_works(dtype):
        return 0
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.device.type == "cpu":
                setattr(parent, name, PackedLinear(child, batch_hint))
                count += 1
    logger.info("%d %s linear layers packed for oneDNN", count, dtype)
    return count


def _packing_works(dtype: torch.dtype) -> bool:
    """One small layer through both paths: the private operators exist and agree."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        linear = nn.Linear(32, 16, dtype=dtype)
        x = torch.randn(3, 32, dtype=dtype)
        with torch.no_grad():
            return torch.allclose(PackedLinear(linear, 4)(x), linear(x), rtol=1e-2, atol=1e-2)
    except (AttributeError, RuntimeError) as exc:
        logger.info("oneDNN weight packing unavailable (%s); plain nn.Linear", exc)
        return False
