"""transformers' Qwen3ForCausalLM as the reference: the same named intermediates the native trace records,
captured with forward hooks, and the comparison that names the first operator that diverges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import Qwen3ForCausalLM
from transformers.models.qwen3.modeling_qwen3 import apply_rotary_pos_emb

# attn_residual / mlp_residual: the residual stream after o_proj and after down_proj (each projection with the
# residual added), which is what the native step computes: the residual is folded into the GEMM (beta = 1).
LAYER_OPS = ["attn_norm", "q", "k", "v", "q_norm", "k_norm", "q_rope", "k_rope", "attn", "attn_residual", "ffn_norm",
             "gate", "up", "act", "mlp_residual"]
ROPE_PERMUTED = {"q", "k", "q_norm", "k_norm", "q_rope", "k_rope"}  # head_dim order differs under GPT-J


def operator_order(num_layers: int) -> list[str]:
    names = ["embed"]
    for i in range(num_layers):
        names += [f"layers.{i}.{op}" for op in LAYER_OPS]
    return names + ["final_norm", "logits"]


def load_reference(model_dir, dtype: torch.dtype) -> Qwen3ForCausalLM:
    return Qwen3ForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager").eval()


@torch.no_grad()
def reference_trace(model: Qwen3ForCausalLM, token_ids: list[int]) -> dict[str, np.ndarray]:
    """Runs one prompt (no past) and returns every traced intermediate as float32 [tokens, ...] arrays."""
    captured: dict[str, torch.Tensor] = {}
    hooks = []

    def keep(name, use_input=False):
        def hook(module, inputs, output=None):
            value = inputs[0] if use_input else output
            if isinstance(value, tuple):  # a decoder layer may return (hidden_states, ...)
                value = value[0]
            captured[name] = value.detach()[0].float()
        return hook

    inner = model.model
    hooks.append(inner.embed_tokens.register_forward_hook(keep("embed")))
    hooks.append(inner.rotary_emb.register_forward_hook(
        lambda m, i, o: captured.update(cos=o[0].detach(), sin=o[1].detach())))
    for i, layer in enumerate(inner.layers):
        p = f"layers.{i}."
        attn, mlp = layer.self_attn, layer.mlp
        hooks += [
            layer.input_layernorm.register_forward_hook(keep(p + "attn_norm")),
            attn.q_proj.register_forward_hook(keep(p + "q")),
            attn.k_proj.register_forward_hook(keep(p + "k")),
            attn.v_proj.register_forward_hook(keep(p + "v")),
            attn.q_norm.register_forward_hook(keep(p + "q_norm")),
            attn.k_norm.register_forward_hook(keep(p + "k_norm")),
            attn.o_proj.register_forward_pre_hook(keep(p + "attn", use_input=True)),
            layer.post_attention_layernorm.register_forward_pre_hook(keep(p + "attn_residual", use_input=True)),
            layer.post_attention_layernorm.register_forward_hook(keep(p + "ffn_norm")),
            mlp.gate_proj.register_forward_hook(keep(p + "gate")),
            mlp.up_proj.register_forward_hook(keep(p + "up")),
            mlp.down_proj.register_forward_pre_hook(keep(p + "act", use_input=True)),
            layer.register_forward_hook(keep(p + "mlp_residual")),
        ]
        # RoPE is a function in transformers, not a module: apply the same function to the captured q/k norms.
        hooks.append(attn.k_norm.register_forward_hook(_rope_capture(captured, p, model.dtype)))
    hooks.append(inner.norm.register_forward_hook(keep("final_norm")))
    hooks.append(model.lm_head.register_forward_hook(keep("logits")))
    try:
        model(torch.tensor([token_ids]))
    finally:
        for h in hooks:
            h.remove()
    captured.pop("cos", None)
    captured.pop("sin", None)
    return {k: v.numpy() for k, v in captured.items()}


def _rope_capture(captured, prefix, dtype):
    def hook(module, inputs, output):
        q = captured[prefix + "q_norm"].to(dtype)[None].transpose(1, 2)  # [1, heads, seq, dh]
        k = output.detach().to(dtype).transpose(1, 2)
        q_rope, k_rope = apply_rotary_pos_emb(q, k, captured["cos"], captured["sin"])
        captured[prefix + "q_rope"] = q_rope.transpose(1, 2)[0].float()
        captured[prefix + "k_rope"] = k_rope.transpose(1, 2)[0].float()
    return hook


@torch.no_grad()
def greedy_continuations(model_dir, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """transformers' f32 greedy `generate` of each prompt alone, without an end token: the new tokens."""
    model = load_reference(model_dir, torch.float32)
    return [model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None,
                           pad_token_id=0)[0, len(prompt):].tolist() for prompt in prompts]


def unpermute_gptj(name: str, value: np.ndarray, head_dim: int) -> np.ndarray:
    """Undo the load-time GPT-J row permutation (element i stored at 2i, i + dh/2 at 2i + 1)."""
    if name.rsplit(".", 1)[-1] not in ROPE_PERMUTED:
        return value
    heads = value.reshape(value.shape[0], -1, head_dim)
    return np.concatenate([heads[..., 0::2], heads[..., 1::2]], axis=-1).reshape(value.shape)


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    if a.shape != e.shape:
        return float("inf")
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


@dataclass
class Divergence:
    name: str
    error: float
    threshold: float

    def __str__(self) -> str:
        return f"first diverging operator: {self.name} (relative L2 error {self.error:.3g} > {self.threshold:.3g})"


def compare_traces(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], order: list[str],
                   threshold) -> tuple[dict[str, float], Divergence | None]:
    """Errors per operator in forward order, and the first one over its threshold (threshold(name) -> float)."""
    errors: dict[str, float] = {}
    first = None
    for name in order:
        if name not in ours or name not in reference:
            side = "native" if name not in ours else "reference"
            raise AssertionError(f"operator {name} missing from the {side} trace")
        errors[name] = rel_l2(ours[name], reference[name])
        limit = threshold(name)
        if first is None and not errors[name] <= limit:
            first = Divergence(name, errors[name], limit)
    return errors, first
