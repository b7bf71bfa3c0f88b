"""Prefix caching for the transformers engine: the KV of prompt blocks that earlier requests prefilled.

As vLLM's automatic prefix caching: a prompt is cut into blocks of `BLOCK` tokens, and a block's KV is
kept under a key that holds its tokens and, through its parent, every token before it (vLLM chains
hashes; here the key is (parent block's id, this block's tokens), so that two different prefixes can
never share a key, whatever the hash). A request starts from the KV of its longest cached block prefix,
copied out of the store into a cache of its own (`CausalBatcher` then prefills only the rest, as the
later pieces of a chunked prefill continue a cache), and after its prefill its full prompt blocks are
stored. At least the prompt's last token is always prefilled: its logits give the first token.

The KV of a block depends on nothing but the tokens up to its end, for one model, dtype and device
(one engine's); a prompt with images is never looked up nor stored (its image tokens' KV comes from the
pixels), and the engine turns the cache off for vision-language models altogether. The arithmetic of a
hit is a chunked prefill's: float32 output is `generate`'s token for token; bfloat16 may round
otherwise, as vLLM's prefix caching does.

Memory is bounded (`prefix_cache_bytes`); the least recently used block goes first, and since a block
is touched after its descendants whenever a chain is used, a block always goes before its ancestors:
no unreachable block stays behind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

BLOCK = 16  # tokens per block: vLLM's default on GPUs

# (start, end) -> keys and values of those prompt positions: [layers, kv_heads, end - start, head_dim] each
KvSlice = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(eq=False)
class _Block:
    id: int
    key: tuple[int, tuple[int, ...]]  # (parent's id or 0, this block's tokens)
    keys: torch.Tensor  # [layers, kv_heads, BLOCK, head_dim]
    values: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes


class PrefixCache:
    """The blocks, least recently used first; used on the batching thread only."""

    def __init__(self, max_bytes: int, block: int = BLOCK):
        self.max_bytes = max_bytes
        self.block = block
        self.bytes = 0
        self._blocks: OrderedDict[tuple[int, tuple[int, ...]], _Block] = OrderedDict()
        self._ids = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup(self, ids: list[int]) -> tuple[int, Any] | None:
        """The longest cached block prefix of `ids` that leaves at least its last token to prefill: its length,
        and a `DynamicCache` of one row holding a copy of its KV; None if there is none."""
        from transformers import DynamicCache

        chain = self._chain(ids, len(ids) - 1)
        self._touch(chain)
        if not chain:
            return None
        cache = DynamicCache()
        keys, values = torch.cat([b.keys for b in chain], dim=2), torch.cat([b.values for b in chain], dim=2)
        for layer in range(keys.shape[0]):
            cache.update(keys[layer][None], values[layer][None], layer)
        return len(chain) * self.block, cache

    def store_rows(self, prompts: list[list[int]], cache: Any, mask: torch.Tensor) -> bool:
        """Keep the full blocks of each row's prompt from a group's prefill: `cache` holds a row per prompt, its
        prompt's positions where `mask` is 1; False (nothing kept) if its layers are not what blocks can be
        cut from and put back into (`cacheable`)."""
        if not cacheable(cache):
            return False
        for row, ids in enumerate(prompts):
            at = mask[row].nonzero().view(-1)  # the prompt's positions, in order

            def kv(start: int, end: int, row: int = row, at: torch.Tensor = at) -> tuple[torch.Tensor, torch.Tensor]:
                keys = torch.stack([layer.keys[row].index_select(1, at[start:end]) for layer in cache.layers])
                return keys, torch.stack([layer.values[row].index_select(1, at[start:end]) for layer in cache.layers])

            self.store(ids, kv)
        return True

    def store(self, ids: list[int], kv: KvSlice) -> None:
        """Keep the full blocks of a prefilled prompt that are not cached yet; `kv` gives their KV."""
        end = len(ids) // self.block * self.block
        chain = self._chain(ids, end)
        start = len(chain) * self.block
        if start < end:
            keys, values = kv(start, end)
            for at in range(start, end, self.block):
                cut = slice(at - start, at - start + self.block)
                self._ids += 1
                key = (chain[-1].id if chain else 0, tuple(ids[at : at + self.block]))
                block = _Block(self._ids, key, keys[:, :, cut].clone(), values[:, :, cut].clone())
                self._blocks[key] = block
                self.bytes += block.nbytes
                chain.append(block)
        self._touch(chain)
        while self.bytes > self.max_bytes and self._blocks:
            _, block = self._blocks.popitem(last=False)
            self.bytes -= block.nbytes

    def _chain(self, ids: list[int], limit: int) -> list[_Block]:
        """The cached blocks that begin `ids`, within its first `limit` tokens."""
        chain: list[_Block] = []
        for at in range(0, limit - self.block + 1, self.block):
            block = self._blocks.get((chain[-1].id if chain else 0, tuple(ids[at : at + self.block])))
            if block is None:
                break
            chain.append(block)
        return chain

    def _touch(self, chain: list[_Block]) -> None:
        for block in reversed(chain):  # ancestors last: more recently used than any descendant
            self._blocks.move_to_end(block.key)


def cacheable(cache: Any) -> bool:
    """Whether a prefill's cache is one full-length KV tensor pair per layer (`DynamicLayer`), which blocks can
    be cut from and put back into; not a sliding window's, a linear attention's or a state-space model's."""
    from transformers.cache_utils import DynamicLayer

    return bool(cache.layers) and all(type(layer) is DynamicLayer and layer.keys.dim() == 4 for layer in cache.layers)
