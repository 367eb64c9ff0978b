"""The KV cache's block pool as the scheduler sees it: which of the native pool's fixed-size blocks are free.

The native model owns the memory (per layer, [blocks, kv_heads, block_size, head_dim]); each sequence holds a
list of block ids in position order (its block table) and grows it as its tokens enter the cache."""

from __future__ import annotations


class OutOfBlocks(RuntimeError):
    """The pool has too few free blocks for what was asked."""


class BlockPool:
    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("a KV block pool needs at least one block of at least one token")
        self.num_blocks, self.block_size = num_blocks, block_size
        self._free = list(range(num_blocks - 1, -1, -1))  # pop() hands out low ids first

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def used(self) -> int:
        return self.num_blocks - len(self._free)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def missing(self, held: list[int], tokens: int) -> int:
        """Blocks that `held` lacks to cover `tokens` positions."""
        return max(0, self.blocks_for(tokens) - len(held))

    def tokens_within_reach(self, held: list[int]) -> int:
        """Positions that `held` plus every free block can cover."""
        return (len(held) + len(self._free)) * self.block_size

    def grow(self, held: list[int], tokens: int) -> None:
        """Appends blocks to `held` until it covers `tokens` positions."""
        need = self.missing(held, tokens)
        if need > len(self._free):
            raise OutOfBlocks(f"{need} KV blocks needed, {len(self._free)} free")
        held.extend(self._free.pop() for _ in range(need))

    def release(self, held: list[int]) -> None:
        """Returns all of `held` to the pool and empties it."""
        self._free.extend(reversed(held))
        held.clear()
