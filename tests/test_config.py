from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.fixtures.published import QWEN3_1_7B_CONFIG
from infini_qwen3.config import ConfigError, Qwen3Config

QWEN3_1_7B = QWEN3_1_7B_CONFIG


def test_published_qwen3_1_7b_config():
    c = Qwen3Config.from_dict(QWEN3_1_7B)
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (28, 2048, 16, 8, 128)
    assert c.rope_theta == 1e6 and c.tie_word_embeddings and c.eos_token_ids == (151645,)


def test_resaved_form_with_rope_parameters_and_dtype():
    raw = dict(QWEN3_1_7B)
    del raw["rope_theta"], raw["rope_scaling"], raw["torch_dtype"]
    raw.update(rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, dtype="bfloat16",
               layer_types=["full_attention"] * 28)
    assert Qwen3Config.from_dict(raw) == Qwen3Config.from_dict(QWEN3_1_7B)


def test_head_dim_is_not_derived_from_hidden():
    raw = dict(QWEN3_1_7B, hidden_size=1024, head_dim=128)  # Qwen3-0.6B: 16 * 128 != 1024
    assert Qwen3Config.from_dict(raw).head_dim == 128


def test_missing_field_is_named(tmp_path):
    raw = dict(QWEN3_1_7B)
    del raw["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="lacks 'hidden_size'"):
        Qwen3Config.from_file(tmp_path)


@given(st.dictionaries(st.sampled_from(list(QWEN3_1_7B)), st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5), st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))))
def test_arbitrary_values_give_a_config_or_a_config_error(changes):
    """Whatever config.json holds, loading gives a config or a ConfigError, never another exception."""
    try:
        Qwen3Config.from_dict(dict(QWEN3_1_7B, **changes))
    except ConfigError:
        pass
