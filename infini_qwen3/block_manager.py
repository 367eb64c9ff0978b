"""The one owner of the KV cache's blocks (the model holds it; the scheduler, `generate()` and test fixtures borrow
from it): reference counts, and the prefix cache over full blocks.

The native model owns the memory (per layer, [blocks, kv_heads, block_size, head_dim]); a sequence holds a list
of block ids in position order (its block table). A block whose block_size positions are all in the cache gets a
chained content hash: hash(parent block's hash, its token ids, extra keys), the extra keys being the cache salt on
a sequence's first block, so that only requests with the same salt share blocks. The map from hash to block lets
a new prompt start with the blocks of an earlier one that began with the same tokens (vLLM's automatic prefix
caching). Blocks nobody references wait in a free queue in LRU order and keep their hash until they are handed
out again (lazy eviction): they count as free, yet a later prompt can still claim them. A sequence gives its
blocks back tail first, so its shared head is the last to be evicted.

Only full blocks are shared, and they are never written again: a sequence writes positions from its `past`
onwards, which always lie in blocks it alone holds (see `match`)."""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass


class OutOfBlocks(RuntimeError):
    """The pool has too few free blocks for what was asked."""


BlockHash = bytes


def block_hash(parent: BlockHash | None, tokens: list[int], salt: str | None) -> BlockHash:
    """The chained content hash of a full block: its tokens, the hash of the block before it (None for a first
    block) and, on a first block, the cache salt (so the salt reaches every later block through the chain)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(parent if parent is not None else b"root:" + (salt or "").encode("utf-8", "surrogatepass"))
    h.update(array("I", tokens).tobytes())
    return h.digest()


@dataclass
class Block:
    ref_count: int = 0
    hash: BlockHash | None = None  # set once the block is full and registered in the prefix cache
    tokens: tuple[int, ...] = ()  # the tokens behind `hash`, kept to check the map in tests


@dataclass
class PrefixStats:
    queries: int = 0  # prompt tokens looked up in the prefix cache
    hits: int = 0  # of which were found


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("a KV block pool needs at least one block of at least one token")
        self.num_blocks, self.block_size = num_blocks, block_size
        self.blocks = [Block() for _ in range(num_blocks)]
        self._free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))  # LRU first
        self._cached: dict[BlockHash, int] = {}
        self.prefix = PrefixStats()
        self._lock = threading.RLock()  # the engine's thread and a library caller may share one model

    # -- counting --------------------------------------------------------------------------------------------
    @property
    def free(self) -> int:
        """Blocks nobody references, cached ones included: what can be handed out."""
        return len(self._free)

    @property
    def used(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def cached(self) -> int:
        """Blocks with a hash, referenced or not."""
        return len(self._cached)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def tokens_within_reach(self, held: list[int]) -> int:
        """Positions that `held` plus every free block can cover."""
        return (len(held) + len(self._free)) * self.block_size

    # -- prefix cache ----------------------------------------------------------------------------------------
    def match(self, tokens: list[int], salt: str | None, chain: list[BlockHash] | None = None) -> list[int]:
        """Claims the cached blocks `tokens` starts with and returns them (a new block table). At most the full
        blocks before the last token: the last token is always computed, as it gives the logits, and its block is
        written, so it must not be a shared one (vLLM drops that whole block from the hit too). Blocks are hashed
        only up to the first miss; `chain` holds the hashes of tokens' leading full blocks known from an earlier
        call and is extended in place, so that a request waiting for room is not hashed again at every step (its
        tokens only grow)."""
        chain = [] if chain is None else chain
        bs = self.block_size
        with self._lock:
            found: list[int] = []
            for i in range((len(tokens) - 1) // bs):
                if i == len(chain):
                    chain.append(block_hash(chain[-1] if chain else None, tokens[i * bs:(i + 1) * bs], salt))
                block = self._cached.get(chain[i])
                if block is None:
                    break
                found.append(block)
            for block in found:
                self._claim(block)
            return found

    def count_query(self, queried: int, hit: int) -> None:
        """Records a prompt's lookup (tokens asked, tokens found) for the metrics."""
        with self._lock:
            self.prefix.queries += queried
            self.prefix.hits += hit

    def register(self, held: list[int], tokens: list[int], salt: str | None, cached_tokens: int) -> None:
        """Gives a hash to each block of `held` that the first `cached_tokens` of `tokens` fill (their K/V are in
        the cache now). A block whose content another block already holds stays unhashed (both stay valid; the
        first one is the one a later prompt finds)."""
        with self._lock:
            full = min(cached_tokens // self.block_size, len(held))
            parent: BlockHash | None = None
            for i in range(full):
                block = self.blocks[held[i]]
                if block.hash is not None:
                    parent = block.hash
                    continue
                chunk = tokens[i * self.block_size:(i + 1) * self.block_size]
                parent = block_hash(parent, chunk, salt)
                if parent not in self._cached:
                    block.hash, block.tokens = parent, tuple(chunk)
                    self._cached[parent] = held[i]

    # -- owning blocks ---------------------------------------------------------------------------------------
    def grow(self, held: list[int], tokens: int) -> None:
        """Appends fresh blocks to `held` until it covers `tokens` positions; the least recently freed go first,
        losing their hash."""
        with self._lock:
            need = max(0, self.blocks_for(tokens) - len(held))
            if need > len(self._free):
                raise OutOfBlocks(f"{need} KV blocks needed, {len(self._free)} free")
            for _ in range(need):
                block_id, _ = self._free.popitem(last=False)
                self._evict(block_id)
                self.blocks[block_id].ref_count = 1
                held.append(block_id)

    def release(self, held: list[int]) -> None:
        """Drops `held`'s references and empties it; blocks nobody references join the free queue tail first."""
        with self._lock:
            for block_id in reversed(held):
                block = self.blocks[block_id]
                if block.ref_count <= 0:
                    raise RuntimeError(f"KV block {block_id} released more often than it was taken")
                block.ref_count -= 1
                if block.ref_count == 0:
                    self._free[block_id] = None
            held.clear()

    def _claim(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self._free[block_id]
        block.ref_count += 1

    def _evict(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.hash is not None:
            del self._cached[block.hash]
            block.hash, block.tokens = None, ()
