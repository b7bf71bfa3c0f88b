"""The packed step: the running rows' next tokens and a joining group's prefill in one forward pass.

Without it, a joining group's prefill is a pass of its own and every running row waits for it before its next
token (on a CPU a pass costs about a one-row decode step besides its tokens); vLLM runs decoding and a prefill
chunk in one pass. Here the model sees one flat row, `[1, B + G*L]`: the B running rows' last tokens, then the
G joining rows' next L prompt tokens each (left-padded, as a separate prefill pads them), with each token's own
position. The linear layers run once over all of them; only attention tells them apart:
  - `Packed` stands in for the model's cache: each layer's new keys and values go, split, into the batch's
    cache (one position per running row) and the group's cache (L per joining row), and
  - `attend` (called by `attention.grouped_eager_attention` when the model's forward is given `packed=`;
    transformers passes such kwargs down to attention) runs the running rows' queries against the batch's
    cache with the batch's mask, the group's against the group's cache with its causal mask, and lays the
    outputs back out flat. Each half is the same attention, of the same shapes, as in the two separate passes.
The model's own mask is skipped (a 4-D mask is taken as ready-made). Models whose attention is not ours, or that
pass attention anything more (a sliding window, soft-capping, sinks), keep separate passes: `works` tries one
packed pass at load.
"""

from __future__ import annotations

from typing import Any

import torch

from triton_llm.generation.engines.hf import attention

# What our attention may be given besides the layout in a packed pass: its usual plain kwargs, but not a sliding
# window, which the masks here do not apply.
_PLAIN = attention.PLAIN - {"sliding_window"}


class Packed:
    """The layout of one packed pass, and the cache the model's layers update in it."""

    def __init__(self, batch: Any, batch_mask: torch.Tensor, group: Any, group_mask: torch.Tensor, width: int, dtype):
        self.batch, self.group = batch, group  # DynamicCaches: [B, ...] and [G, ...]
        self.rows, self.width = batch_mask.shape[0], width  # B, L
        self.batch_mask = _additive(batch_mask[:, None, None, :].bool(), dtype)  # [B, 1, 1, kv]
        past = group_mask.shape[1] - self.width  # causal: a prompt token sees its own cache up to itself
        causal = torch.arange(group_mask.shape[1]) <= past + torch.arange(self.width)[:, None]
        self.group_mask = _additive(group_mask[:, None, None, :].bool() & causal.to(group_mask.device), dtype)
        self.calls = 0
        self._kv: tuple = ()

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        (run_k, join_k), (run_v, join_v) = self._split(keys), self._split(values)
        self._kv = self.batch.update(run_k, run_v, layer), self.group.update(join_k, join_v, layer)
        return keys, values  # `attend` reads the halves

    def _split(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[1, heads, B + G*L, dim] -> [B, heads, 1, dim] and [G, heads, L, dim]."""
        running = t[0, :, : self.rows].transpose(0, 1).unsqueeze(2)
        return running, t[0, :, self.rows :].unflatten(1, (-1, self.width)).transpose(0, 1).contiguous()

    def attend(self, query: torch.Tensor, scaling: float | None, kwargs: dict[str, Any], core) -> torch.Tensor:
        if any(arg is not None for name, arg in kwargs.items() if name not in _PLAIN):
            raise NotImplementedError(f"attention given {sorted(kwargs)}: no packed step for this model")
        self.calls += 1
        (run_k, run_v), (join_k, join_v) = self._kv
        running, joining = self._split(query)
        out_run = core(running, run_k, run_v, self.batch_mask, scaling)  # [B, 1, heads, dim]
        out_join = core(joining, join_k, join_v, self.group_mask, scaling)  # [G, L, heads, dim]
        return torch.cat([out_run.flatten(0, 1), out_join.flatten(0, 1)])[None]


def run(model: Any, last: list[int], batch: Any, batch_mask: torch.Tensor, ids, mask, position_ids, group: Any):
    """One packed pass: the running rows' last tokens on `batch` (their mask already holds the new position), the
    group's tokens `ids` [G, L] on `group` (`mask`: its past and new positions); returns the running rows' logits
    and the group's last positions' logits, and how many layers' attention took the layout."""
    device, (rows, width) = batch_mask.device, ids.shape
    layout = Packed(batch, batch_mask, group, mask, width, model.dtype)
    flat = torch.cat([torch.tensor(last, dtype=torch.long, device=device), ids.flatten()])[None]
    positions = torch.cat([batch_mask.sum(-1) - 1, position_ids.flatten()])[None]
    keep = torch.cat([torch.arange(len(last)), len(last) + torch.arange(1, rows + 1) * width - 1]).to(device)
    logits = model(
        input_ids=flat,
        attention_mask=torch.zeros((1, 1, 1, 1), dtype=model.dtype, device=device),  # unused: `Packed` masks
        position_ids=positions,
        past_key_values=layout,
        use_cache=True,
        logits_to_keep=keep,
        packed=layout,
    ).logits[0]
    return logits[: len(last)], logits[len(last) :], layout.calls


@torch.inference_mode()  # called from `setup`, outside the batching thread's inference mode
def works(model: Any) -> bool:
    """Whether a packed pass gives separate passes' logits on tiny inputs: the model's attention is ours and
    takes the layout, and its positions and masks are the plain ones built here."""
    from transformers import DynamicCache

    device = model.device
    ids, mask = torch.tensor([[5, 6, 7]], device=device), torch.ones((1, 3), dtype=torch.long, device=device)
    at = torch.arange(3, device=device)[None]

    def alone(n: int, cache: Any, start: int = 0) -> torch.Tensor:
        out = model(input_ids=ids[:, start:n], attention_mask=mask[:, :n], position_ids=at[:, start:n],
                    past_key_values=cache, use_cache=True)  # fmt: skip
        return out.logits[:, -1]

    try:
        batch, own = DynamicCache(), DynamicCache()
        alone(2, batch), alone(2, own)
        step, prefill = alone(3, own, start=2), alone(3, DynamicCache())
        running, group, calls = run(model, [7], batch, mask, ids, mask, at, DynamicCache())
    except Exception:  # noqa: BLE001 - whatever fails, separate passes work
        return False
    pairs = ((running, step), (group, prefill))
    return calls > 0 and all(
        torch.allclose(a.float(), b.float(), rtol=0.02, atol=0.02 * b.abs().max()) for a, b in pairs
    )


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as transformers' eager mask: 0 where allowed, the dtype's minimum elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
