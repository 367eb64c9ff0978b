"""Timings of this project's model and of transformers on the same checkpoint, device and dtype.

Honest by construction: a warm-up run is excluded, each figure is the median of `repeats` runs, and the
device is synchronized before a clock is read (our steps return sampled tokens to the host, which waits for
the device; transformers is synchronized explicitly)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.fixtures.blocks import slot_blocks
from infini_qwen3.constraints import grammar_for, json_answer
from infini_qwen3.grammar import Grammars
from infini_qwen3.logits import LogitsOptions, resolve_on_host
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest

GREEDY = SamplingParams(temperature=0.0)
TORCH_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}


@dataclass
class Shape:
    batch: int
    tokens: int  # prompt length (prefill) or new tokens (decode)


def median_time(run: Callable[[], float | None], repeats: int) -> float:
    """run() returns its own duration (or None: then it is timed whole); warm-up excluded."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        measured = run()
        times.append(measured if measured is not None else time.perf_counter() - start)
    return statistics.median(times)


ORDINARY_TOKENS = 150000  # prompt ids stay below Qwen3's special tokens (151643 and up)


def prompts(batch: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, min(vocab, ORDINARY_TOKENS), size=(batch, length)).tolist()


# -- this project ---------------------------------------------------------------------------------------------
def ours_prefill(model: Qwen3Model, shape: Shape, repeats: int) -> float:
    """Tokens/s of one step that prefills `batch` prompts of `tokens` tokens (and samples one token each)."""
    batch = prompts(shape.batch, shape.tokens, model.vocab_size)
    requests = [StepRequest(p, 0, slot_blocks(model, slot), GREEDY) for slot, p in enumerate(batch)]

    def run() -> None:
        model.infer(requests)

    return shape.batch * shape.tokens / median_time(run, repeats)


# What a request with logprobs and a penalty costs: the host logits path of the engine (iq3InferWithLogits, then
# penalties, sampling and top-5 logprobs in numpy for every request of every step).
HOST_PATH = LogitsOptions(frequency_penalty=0.5, logprobs=5)


# A structured-output request: every step masks each row's logits with its grammar and samples on the host.
BENCH_SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 32},
                                                 "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                                 "tags": {"type": "array", "items": {"type": "string"}}},
                "required": ["name", "age", "tags"], "additionalProperties": False}


class SchemaRows:
    """One json_schema matcher per row, as the engine keeps them; a row whose JSON is complete starts a new one."""

    def __init__(self, model: Qwen3Model, batch: int):
        grammars = Grammars(model.tokenizer.fast.to_str(), model.vocab_size, model.defaults.eos_token_ids)
        self.fresh = grammars.matcher(grammar_for(json_answer(BENCH_SCHEMA, "bench"), None))
        self.rows = [self.fresh.copy() for _ in range(batch)]

    def pick(self, row: int, logits: np.ndarray, device_token: int) -> int:
        matcher = self.rows[row]
        token, _ = resolve_on_host(logits, device_token, LogitsOptions(), GREEDY, [], [], 0.5, matcher.allowed())
        matcher.accept(token)
        if matcher.finished:
            self.rows[row] = self.fresh.copy()
        return token


def ours_decode(model: Qwen3Model, shape: Shape, repeats: int, prompt_len: int = 16,
                path: str = "device") -> float:
    """Tokens/s of `tokens` greedy decode steps over `batch` running requests (the prefill is not timed).
    path "device": sampling on the device; "host": every request through the host logits path (logprobs and a
    penalty); "json_schema": every request constrained by BENCH_SCHEMA (mask, host sampling, matcher advance)."""
    batch = prompts(shape.batch, prompt_len, model.vocab_size, seed=1)
    schema_rows = SchemaRows(model, shape.batch) if path == "json_schema" else None

    def step(requests: list[StepRequest], generated: list[list[int]]) -> list[int]:
        if path == "device":
            return model.infer(requests)
        tokens, logits = model.infer_with_logits(requests)
        for i, row in enumerate(logits):  # what Engine._host_logits does for each request
            if schema_rows is not None:
                tokens[i] = schema_rows.pick(i, row, tokens[i])
            else:
                tokens[i], _ = resolve_on_host(row, tokens[i], HOST_PATH, GREEDY, batch[i], generated[i], 0.5)
        return tokens

    def run() -> float:
        generated = [[] for _ in batch]
        last = step([StepRequest(p, 0, slot_blocks(model, slot), GREEDY) for slot, p in enumerate(batch)], generated)
        start = time.perf_counter()
        for position in range(shape.tokens - 1):
            for out, token in zip(generated, last):
                out.append(token)
            last = step([StepRequest([t], prompt_len + position, slot_blocks(model, slot), GREEDY)
                         for slot, t in enumerate(last)], generated)
        return time.perf_counter() - start

    return shape.batch * (shape.tokens - 1) / median_time(run, repeats)


# -- transformers ---------------------------------------------------------------------------------------------
class Reference:
    def __init__(self, model_dir, device: str, dtype: str):
        import torch
        from transformers import Qwen3ForCausalLM

        self.torch = torch
        self.device = "cuda" if device == "nvidia" else "cpu"
        self.model = Qwen3ForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, TORCH_DTYPES[dtype]))
        self.model = self.model.to(self.device).eval()

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _ids(self, batch: int, length: int, seed: int):
        return self.torch.tensor(prompts(batch, length, self.model.config.vocab_size, seed), device=self.device)

    def prefill(self, shape: Shape, repeats: int) -> float:
        ids = self._ids(shape.batch, shape.tokens, 0)

        def run():
            with self.torch.no_grad():
                self.model(ids, logits_to_keep=1)  # last-position logits only, as ours computes
            self.sync()

        return shape.batch * shape.tokens / median_time(run, repeats)

    def decode(self, shape: Shape, repeats: int, prompt_len: int = 16) -> float:
        """generate() with exactly `tokens` greedy new tokens, minus the prefill of the same prompts."""
        ids = self._ids(shape.batch, prompt_len, 1)
        # An explicit mask: with a pad id, generate() would mask every prompt token equal to it.
        kwargs = dict(do_sample=False, attention_mask=self.torch.ones_like(ids), pad_token_id=None, eos_token_id=None)

        def generate(new_tokens: int):
            with self.torch.no_grad():
                self.model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
            self.sync()

        first = median_time(lambda: generate(1), repeats)  # prefill + one sampled token
        total = median_time(lambda: generate(shape.tokens), repeats)
        return shape.batch * (shape.tokens - 1) / max(total - first, 1e-9)


# -- the bandwidth floor --------------------------------------------------------------------------------------
def read_bandwidth(device: str, nbytes: int = 2 << 30) -> float:
    """Bytes read per second by a streaming reduction over nbytes (far larger than any last-level cache), with the
    threads the model uses (torch's, set as ours): what batch-1 decode, which reads every weight once, is bound by.
    A copy would move each byte twice (read and write) and understate it."""
    import torch

    on_gpu = device == "nvidia"
    src = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda" if on_gpu else "cpu")

    def read() -> None:  # None: median_time times the call (after a warm-up run that touches the pages)
        src.sum()
        if on_gpu:
            torch.cuda.synchronize()

    return nbytes / median_time(read, 5 if on_gpu else 3)
