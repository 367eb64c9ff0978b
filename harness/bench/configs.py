"""Named model shapes for benchmarks. Weights are random (made with transformers); only the shapes matter."""

from __future__ import annotations

from pathlib import Path

from harness.fixtures.published import QWEN3_1_7B_CONFIG
from harness.results import run_metadata
from infini_qwen3.demo_checkpoint import tiny_config

# Qwen3-1.7B's published shapes.
QWEN3_1_7B = {key: QWEN3_1_7B_CONFIG[key] for key in (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "max_position_embeddings", "tie_word_embeddings")}
SMALL = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
             num_key_value_heads=4, head_dim=32)

CONFIGS = {"tiny": {}, "small": SMALL, "qwen3-1.7b": QWEN3_1_7B}


def build(name: str, root: Path, dtype: str) -> Path:
    """The checkpoint for a named shape, built once under root (transformers random init, saved in dtype)."""
    from harness.fixtures.checkpoints import checkpoint

    torch_dtype = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype]
    return checkpoint(root, dtype=torch_dtype, init_std=0.02, **CONFIGS[name])


def describe(name: str) -> dict:
    shape = tiny_config(**CONFIGS[name])
    return {k: shape[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                  "num_key_value_heads", "head_dim", "vocab_size")}


def run_info(args, model_dir: Path) -> dict:
    """What a bench result says of its run: where and when (run_metadata), and which model, dtype and shape."""
    return {**run_metadata(args.device), "config": args.model or args.config, "model_dir": str(model_dir),
            "dtype": args.dtype, "ndev": args.ndev, "shape": None if args.model else describe(args.config)}
