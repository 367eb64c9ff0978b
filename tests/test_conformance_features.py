"""Every conformance case has the feature the matrix files it under (conformance/features.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.features import MODULES, RERUN_MODULES, RULES, feature_of

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"


def test_every_conformance_module_has_a_feature():
    modules = {p.stem for p in CONFORMANCE.glob("test_*.py")}
    assert modules - set(MODULES) == set()


@pytest.mark.parametrize("module, name, feature", [
    ("test_chat", "test_stream_chunk_order_role_content_finish_done", "SSE stream: chunk shape and order, [DONE]"),
    ("test_chat", "test_include_usage_adds_one_usage_chunk", "usage and stream_options"),
    ("test_completions", "test_stop_strings_in_completions", "stop strings (no leaks)"),
    ("test_text_integrity", "test_stop_string_inside_multibyte_text", "stop strings (no leaks)"),
    ("test_text_integrity", "test_split_characters_are_held_until_whole", "UTF-8 integrity of streamed text"),
    ("test_lifecycle", "test_stream_disconnect_frees_the_slot_at_once", "disconnects"),
    ("test_qwen3_api", "test_tool_calls_stream_as_deltas", "tool calls"),
    ("test_errors", "test_malformed_json_is_400", "errors in OpenAI's shape"),
    ("test_tensor_parallel", "test_seed_determinism", "tensor parallelism (--ndev 2)"),  # reruns keep theirs
])
def test_cases_take_the_first_matching_rule_else_their_module(module, name, feature):
    assert feature_of(module, name) == feature


def test_a_module_without_a_feature_is_named():
    with pytest.raises(KeyError, match="test_new_thing"):
        feature_of("test_new_thing", "test_something_unruled")


def test_rules_and_reruns_name_known_things():
    assert len({f for f, _ in RULES}) == len(RULES)
    assert RERUN_MODULES <= set(MODULES)
