"""Host-side logits work for requests the device sampler cannot serve: OpenAI's presence/frequency penalties,
transformers' repetition penalty, logit_bias, min_p, and logprobs.

Logprobs are log_softmax of the raw logits (before temperature, penalties and bias), as vLLM returns by
default. Sampling here follows the same steps as InfiniCore's random_sample where they overlap (temperature,
top-k, top-p over probabilities sorted in descending order, one uniform draw), with two differences that the
README states: the token that crosses top_p is kept (transformers' rule), and min_p is applied first."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import SamplingParams


@dataclass(frozen=True)
class LogitsOptions:
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    min_p: float = 0.0
    logprobs: int | None = None  # None: not asked; k: the chosen token's logprob and the k most likely tokens'
    prompt_logprobs: int | None = None  # the same for every prompt token after the first (echo + logprobs)

    @property
    def samples_on_host(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty or self.repetition_penalty != 1.0
                    or self.logit_bias or self.min_p)

    @property
    def needs_logits(self) -> bool:
        return self.samples_on_host or self.logprobs is not None


@dataclass
class TokenLogprobs:
    token: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)  # most likely first
    rank: int = 1  # 1 + how many tokens are more likely than `token`


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - np.max(logits)
    return shifted - np.log(np.sum(np.exp(shifted)))


def token_logprobs(raw_logits: np.ndarray, token: int, k: int) -> TokenLogprobs:
    logprobs = log_softmax(raw_logits)
    top = []
    if k > 0:
        ids = np.argpartition(-logprobs, k - 1)[:k]
        ids = ids[np.lexsort((ids, -logprobs[ids]))]  # most likely first, ties by id
        top = [(int(i), float(logprobs[i])) for i in ids]
    return TokenLogprobs(token, float(logprobs[token]), top, int(np.count_nonzero(logprobs > logprobs[token])) + 1)


def apply_penalties(logits: np.ndarray, options: LogitsOptions, prompt: list[int], generated: list[int]) -> np.ndarray:
    """logit_bias, then repetition penalty (prompt + generated, transformers' rule), then frequency and presence
    penalties (generated tokens only, OpenAI's rule). Returns a new array."""
    out = logits.astype(np.float64)
    for token, bias in options.logit_bias:
        out[token] += bias
    if options.repetition_penalty != 1.0:
        seen = np.unique(np.asarray(prompt + generated, dtype=np.int64))
        values = out[seen]
        out[seen] = np.where(values > 0, values / options.repetition_penalty, values * options.repetition_penalty)
    if generated and (options.frequency_penalty or options.presence_penalty):
        ids, counts = np.unique(np.asarray(generated, dtype=np.int64), return_counts=True)
        out[ids] -= options.frequency_penalty * counts + options.presence_penalty
    return out


def resolve_on_host(raw_logits: np.ndarray, device_token: int, options: LogitsOptions, sampling: SamplingParams,
                    prompt: list[int], generated: list[int], random_value: float,
                    allowed: np.ndarray | None = None) -> tuple[int, TokenLogprobs | None]:
    """One request's token after a step of the host logits path: resampled (same uniform draw as the device)
    where penalties, bias, min_p or a grammar's allowed tokens (`allowed`, a bool mask) apply, else the
    device's; and its logprobs (of the raw logits) when asked for."""
    token = device_token
    if options.samples_on_host or allowed is not None:
        processed = apply_penalties(raw_logits, options, prompt, generated)
        if allowed is not None:
            processed[~allowed] = -np.inf
        token = sample(processed, sampling, options.min_p, random_value)
    logprobs = token_logprobs(raw_logits, token, options.logprobs) if options.logprobs is not None else None
    return token, logprobs


def candidates(logits: np.ndarray, sampling: SamplingParams, min_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The tokens a draw can return, most likely first, with their cumulative (unnormalized) probabilities:
    temperature -> min_p -> top-k -> top-p (the token that crosses top_p stays)."""
    scaled = logits / sampling.temperature
    probs = np.exp(scaled - np.max(scaled))
    if min_p > 0:
        probs[probs < min_p * probs.max()] = 0.0
    order = np.argsort(-probs, kind="stable")
    order = order[probs[order] > 0]
    if sampling.top_k > 0:
        order = order[:sampling.top_k]
    cumulative = np.cumsum(probs[order])
    if sampling.top_p < 1.0:
        keep = int(np.searchsorted(cumulative, sampling.top_p * cumulative[-1])) + 1
        order, cumulative = order[:keep], cumulative[:keep]
    return order, cumulative


def sample(logits: np.ndarray, sampling: SamplingParams, min_p: float, random_value: float) -> int:
    """One token from processed logits: the argmax when greedy, else one uniform draw over candidates()."""
    if sampling.greedy:
        return int(np.argmax(logits))
    order, cumulative = candidates(logits, sampling, min_p)
    pick = int(np.searchsorted(cumulative, random_value * cumulative[-1], side="right"))
    return int(order[min(pick, len(order) - 1)])
