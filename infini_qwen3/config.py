"""Qwen3 configuration from a checkpoint's config.json (both the published and the newer re-saved forms)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .quantization import Quantization

SUPPORTED_ARCHITECTURES = {"Qwen3ForCausalLM"}


class ConfigError(ValueError):
    """The checkpoint's configuration is invalid or uses something this project does not implement."""


@dataclass(frozen=True)
class Qwen3Config:
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    torch_dtype: str
    eos_token_ids: tuple[int, ...]
    quantization: "Quantization | None" = None  # an 8-bit checkpoint's format (quantization.py)

    @classmethod
    def from_dict(cls, raw: dict) -> "Qwen3Config":
        """Parses and validates; anything malformed is a ConfigError naming the problem."""
        if not isinstance(raw, dict):
            raise ConfigError("config.json must hold a JSON object")
        try:
            return cls._parse(raw)
        except ConfigError:
            raise
        except KeyError as exc:
            raise ConfigError(f"config.json lacks {exc.args[0]!r}") from exc
        except (TypeError, ValueError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            raise ConfigError(f"config.json has an invalid value: {exc}") from exc

    @classmethod
    def _parse(cls, raw: dict) -> "Qwen3Config":
        architectures = raw.get("architectures") or ["Qwen3ForCausalLM"]
        if raw.get("model_type", "qwen3") != "qwen3" or not set(architectures) & SUPPORTED_ARCHITECTURES:
            raise ConfigError(f"not a Qwen3 dense checkpoint: model_type={raw.get('model_type')!r}, "
                              f"architectures={architectures}")
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        config = cls(
            num_layers=int(raw["num_hidden_layers"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            # Qwen3 states head_dim explicitly; it differs from hidden/heads for 0.6B and 4B.
            head_dim=int(raw.get("head_dim") or hidden // heads),
            vocab_size=int(raw["vocab_size"]),
            max_position_embeddings=int(raw.get("max_position_embeddings", 40960)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope_theta(raw),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            torch_dtype=str(raw.get("torch_dtype") or raw.get("dtype") or "bfloat16"),
            eos_token_ids=_token_ids(raw.get("eos_token_id")),
            quantization=_quantization(raw),
        )
        _check_supported(raw, config)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> "Qwen3Config":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path} not found") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw)


def _token_ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _rope_theta(raw: dict) -> float:
    """rope_theta at the top level (published form) or inside rope_parameters (newer transformers)."""
    params = raw.get("rope_parameters") or {}
    if "rope_theta" in raw and raw["rope_theta"] is not None:
        return float(raw["rope_theta"])
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return 10000.0


def _quantization(raw: dict):
    from .quantization import from_config  # it raises ConfigError, defined here

    return from_config(raw)


def _check_supported(raw: dict, config: Qwen3Config) -> None:
    if raw.get("use_sliding_window"):
        raise ConfigError("use_sliding_window=true is not supported (Qwen3 dense checkpoints ship it off)")
    layer_types = raw.get("layer_types")
    if layer_types and any(t != "full_attention" for t in layer_types):
        raise ConfigError(f"only full_attention layers are supported, got {sorted(set(layer_types))}")
    for key in ("rope_scaling", "rope_parameters"):
        scaling = raw.get(key) or {}
        rope_type = scaling.get("rope_type") or scaling.get("type") or "default"
        if rope_type != "default":
            raise ConfigError(f"{key} of type {rope_type!r} is not implemented (only the default RoPE is)")
    if raw.get("attention_bias"):
        raise ConfigError("attention_bias=true is not supported (Qwen3 has no q/k/v/o biases)")
    hidden_act = raw.get("hidden_act", "silu")
    if hidden_act != "silu":
        raise ConfigError(f"hidden_act {hidden_act!r} is not supported (Qwen3 uses silu)")
    for name in ("num_layers", "hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "head_dim",
                 "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}")
    if config.num_heads % config.num_kv_heads:
        raise ConfigError("num_attention_heads must be a multiple of num_key_value_heads")
    if config.head_dim % 2:
        raise ConfigError("head_dim must be even for RoPE")
