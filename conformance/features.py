"""The protocol feature each conformance case covers: what a row of the conformance matrix (harness.report
conformance) is about. Every collected case gets one, as the JUnit property `feature` (conftest.py), so the matrix
groups cases by feature, not by the file they happen to live in.

A case takes the first rule whose pattern matches its test function's name (the name says what it checks), else
its module's feature; a module without one is an error at collection (tests/test_conformance_features.py)."""

from __future__ import annotations

import re

# (feature, pattern on the test function's name), first match wins: the protocol-level features any
# OpenAI-compatible server can be held to, across the modules that check them.
RULES: list[tuple[str, str]] = [
    ("SSE stream: chunk shape and order, [DONE]", r"stream_chunk_order|stream_shape|stream_with_echo"),
    ("usage and stream_options", r"usage"),
    ("finish reasons and token budgets", r"max_tokens|max_completion_tokens|token_budget"),
    ("n and prompt lists", r"n_choices|one_choice_group_per_prompt"),
    ("stop strings (no leaks)", r"stop_string"),
    ("seed determinism, stream = non-stream", r"seed|stream_equals_non_stream"),
    ("concurrent streams", r"concurrent_streams"),
    ("disconnects", r"disconnect|clients_left"),
    ("logprobs", r"logprobs"),
    ("tool calls", r"tool"),
    ("reasoning (thinking)", r"thinking|think_block"),
    ("models list and retrieve", r"^test_models_(retrieve|lists)|model_may_be_omitted"),
]

# The feature of every case no rule names, by module.
MODULES: dict[str, str] = {
    "test_chat": "chat messages and templates",
    "test_completions": "completions: echo, token-id prompts",
    "test_errors": "errors in OpenAI's shape",
    "test_fuzz": "hostile bodies never 5xx",
    "test_endpoints": "other routes: tokenize, CORS, request ids, version",
    "test_logprobs_penalties": "sampling: logit_bias, penalties, min_p",
    "test_prompt_logprobs": "prompt logprobs, /tokenizer_info",
    "test_structured_outputs": "structured outputs",
    "test_qwen3_api": "reasoning (thinking)",
    "test_text_integrity": "UTF-8 integrity of streamed text",
    "test_responses_api": "Responses API and Agents SDK",
    "test_instructor": "instructor",
    "test_lm_eval": "lm-evaluation-harness",
    "test_prefix_cache": "prefix cache (cached_tokens, cache_salt, metrics)",
    "test_control_tokens": "control tokens from chat text",
    "test_lifecycle": "health, metrics, auth, queue limits",
    "test_connections": "slow and broken connections",
    "test_shutdown": "graceful shutdown",
    "test_paged_kv": "long contexts, large bodies",
    "test_tensor_parallel": "tensor parallelism (--ndev 2)",
    "test_quantized_servers": "8-bit checkpoints",
    "test_special_delimiters": "delimiters marked special",
}

# Modules that run other modules' cases again on another server of this project's: their cases keep the
# module's own feature (the configuration is what they test), not the rules'.
RERUN_MODULES = {"test_tensor_parallel", "test_quantized_servers", "test_special_delimiters"}

_COMPILED = [(feature, re.compile(pattern)) for feature, pattern in RULES]


def feature_of(module: str, test_name: str) -> str:
    """The feature of the case `test_name` (its function name, without parameters) in `module`."""
    if module not in RERUN_MODULES:
        for feature, pattern in _COMPILED:
            if pattern.search(test_name):
                return feature
    if module not in MODULES:
        raise KeyError(f"conformance/{module}.py has no feature in conformance/features.py MODULES")
    return MODULES[module]
