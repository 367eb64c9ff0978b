"""The block manager as a state machine: sequences start (claiming cached prefixes), grow, write, register, finish
and are preempted in any order, against a model of what each block holds. Whatever the order: reference counts
match the block tables, no block is both free and referenced, a cache hit returns blocks holding exactly the
tokens asked for (under the same salt), a block is only written by its one holder, a referenced block is never
handed out again, and everything is free at the end."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from infini_qwen3.block_manager import BlockManager, OutOfBlocks, block_hash

BLOCK = 4
BLOCKS = 6
BASES = ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 9, 9, 9, 9])  # share one block, then differ


class Seq:
    def __init__(self, tokens: list[int], salt: str | None):
        self.tokens, self.salt = tokens, salt
        self.blocks: list[int] = []
        self.past = 0


class BlockManagerMachine(RuleBasedStateMachine):
    sequences = Bundle("sequences")

    def __init__(self):
        super().__init__()
        self.kv = BlockManager(BLOCKS, BLOCK)
        self.live: list[Seq] = []
        self.content: dict[int, list[int | None]] = {}  # what the K/V of each block were computed from
        self.salt_of: dict[int, str | None] = {}

    def _start(self, seq: Seq) -> bool:
        hit = self.kv.match(seq.tokens, seq.salt)
        assert len(hit) * BLOCK <= len(seq.tokens) - 1, "the last token must stay to be computed"
        for i, block in enumerate(hit):
            assert self.content[block] == seq.tokens[i * BLOCK:(i + 1) * BLOCK], "a hit holds other tokens"
            assert self.salt_of[block] == seq.salt, "a hit crossed cache salts"
        if self.kv.blocks_for(len(seq.tokens)) - len(hit) > self.kv.free:
            self.kv.release(hit)
            return False
        seq.blocks, seq.past = hit, len(hit) * BLOCK
        self.live.append(seq)
        return True

    @rule(target=sequences, base=st.sampled_from(BASES), cut=st.integers(1, 10),
          tail=st.lists(st.integers(20, 23), max_size=6), salt=st.sampled_from([None, None, "tenant-a"]))
    def start(self, base, cut, tail, salt):
        seq = Seq(base[:cut] + tail, salt)
        return seq if self._start(seq) else None

    @rule(seq=sequences, take=st.integers(1, 9), generated=st.lists(st.integers(20, 23), max_size=3))
    def compute(self, seq, take, generated):
        """Writes up to `take` pending tokens' K/V (growing the table), then samples `generated` tokens."""
        if seq is None or seq not in self.live:
            return
        take = min(take, len(seq.tokens) - seq.past)
        others = {b for s in self.live if s is not seq for b in s.blocks}
        before = list(seq.blocks)
        try:
            self.kv.grow(seq.blocks, seq.past + take)
        except OutOfBlocks:
            assert self.kv.blocks_for(seq.past + take) - len(seq.blocks) > self.kv.free
            return
        assert not set(seq.blocks[len(before):]) & (others | set(before)), "a referenced block was handed out"
        for position in range(seq.past, seq.past + take):
            block = seq.blocks[position // BLOCK]
            assert self.kv.blocks[block].ref_count == 1 and block not in others, "a shared block was written"
            cells = self.content.setdefault(block, [None] * BLOCK)
            if position % BLOCK == 0:
                cells[:] = [None] * BLOCK  # a fresh block: what it held before is gone
            cells[position % BLOCK] = seq.tokens[position]
            self.salt_of[block] = seq.salt
        seq.past += take
        self.kv.register(seq.blocks, seq.tokens, seq.salt, seq.past)
        if seq.past == len(seq.tokens):
            seq.tokens += generated

    @rule(seq=consumes(sequences))
    def finish(self, seq):
        if seq is None or seq not in self.live:
            return
        self.kv.release(seq.blocks)
        self.live.remove(seq)

    @rule(seq=sequences)
    def preempt_and_resume(self, seq):
        if seq is None or seq not in self.live:
            return
        self.kv.release(seq.blocks)
        self.live.remove(seq)
        self._start(seq)

    @invariant()
    def references_match_the_tables(self):
        held: dict[int, int] = {}
        for seq in self.live:
            for block in seq.blocks:
                held[block] = held.get(block, 0) + 1
        for block_id, block in enumerate(self.kv.blocks):
            assert block.ref_count == held.get(block_id, 0) >= 0
            assert (block_id in self.kv._free) == (block.ref_count == 0), "free and referenced, or neither"

    @invariant()
    def the_hash_map_points_at_matching_blocks(self):
        for digest, block_id in self.kv._cached.items():
            block = self.kv.blocks[block_id]
            assert block.hash == digest and list(block.tokens) == self.content[block_id]
        assert len({b for b in self.kv._cached.values()}) == len(self.kv._cached)

    def teardown(self):
        for seq in self.live:
            self.kv.release(seq.blocks)
        assert self.kv.free == BLOCKS and self.kv.used == 0


TestBlockManager = BlockManagerMachine.TestCase
TestBlockManager.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_second_prompt_claims_the_first_ones_full_blocks_and_computes_its_last_token():
    kv = BlockManager(8, 4)
    first: list[int] = []
    kv.grow(first, 10)
    kv.register(first, list(range(10)), None, 10)  # two full blocks and a partial one
    assert kv.match(list(range(10)) + [99], None) == first[:2]
    assert kv.match(list(range(8)), None) == first[:1], "the block of the last token is computed again"
    assert kv.match(list(range(10)), "other tenant") == []


def test_cached_blocks_nobody_holds_are_free_and_evicted_least_recent_first_tail_first():
    kv = BlockManager(4, 2)
    a: list[int] = []
    kv.grow(a, 8)
    kv.register(a, [1, 2, 3, 4, 5, 6, 7, 8], None, 8)
    kv.release(a)
    assert kv.free == 4 and kv.cached == 4
    b: list[int] = []
    kv.grow(b, 2)  # takes the released tail first: the head of `a` survives
    assert kv.match([1, 2, 3, 4, 5, 6, 0], None) != []
    assert kv.cached == 3


def test_a_prompt_is_hashed_up_to_its_first_miss_and_once_across_lookups(monkeypatch):
    """A request waiting for room is looked up at every step: its chain of block hashes is kept, not recomputed."""
    import infini_qwen3.block_manager as block_manager

    kv = BlockManager(8, 4)
    first: list[int] = []
    kv.grow(first, 8)
    kv.register(first, list(range(8)), None, 8)
    calls = []
    monkeypatch.setattr(block_manager, "block_hash", lambda *a: calls.append(a) or block_hash(*a))
    tokens, chain = list(range(8)) + [50, 51, 52, 53, 60, 61, 62, 63, 70], []
    hit = kv.match(tokens, None, chain)
    assert hit == first[:2] and len(calls) == 3, "two hits, then the first miss ends the lookup"
    kv.release(hit)
    assert kv.match(tokens, None, chain) == first[:2] and len(calls) == 3  # nothing hashed again
    assert chain == [block_hash(None, [0, 1, 2, 3], None), block_hash(chain[0], [4, 5, 6, 7], None),
                     block_hash(chain[1], [50, 51, 52, 53], None)]


def test_block_hashes_chain_their_parents_and_salt():
    first = block_hash(None, [1, 2], None)
    assert block_hash(first, [3, 4], None) != block_hash(block_hash(None, [9, 9], None), [3, 4], None)
    assert block_hash(None, [1, 2], "s") != first


def test_releasing_more_than_taken_is_refused():
    kv = BlockManager(2, 2)
    held: list[int] = []
    kv.grow(held, 2)
    twice = list(held)
    kv.release(held)
    with pytest.raises(RuntimeError, match="released more often"):
        kv.release(twice)
