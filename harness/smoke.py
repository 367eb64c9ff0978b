"""Does the model run on this device at all? One prefill, one decode step and one sampled token on a tiny
random checkpoint, with the logits checked against transformers (f32, CPU). Prints one line per step and exits
non-zero when a step's logits are off (beyond the parity suite's logits limit in f32, a loose bound in half
precision) or the f32 greedy token differs; the platform harness runs it before the parity suite so that a crash is
localized to a step, not a test.
    python -m harness.smoke --device nvidia [--dtype f32]"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.checkpoints import checkpoint
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="f32")
    args = parser.parse_args(argv)
    from transformers import Qwen3ForCausalLM

    with tempfile.TemporaryDirectory() as root:
        path = checkpoint(Path(root), num_hidden_layers=2, seed=1)
        prompt = [11, 22, 33, 44, 55]
        reference = Qwen3ForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        with torch.no_grad():
            expected = reference(torch.tensor([prompt + [66]])).logits[0].numpy()
        with Qwen3Model(path, device=args.device, dtype=args.dtype, max_model_len=32, kv_cache_tokens=64) as model:
            print(f"[smoke] loaded on {args.device} ({args.dtype})", flush=True)
            limit = LOGITS_LIMIT[args.dtype]
            prefill = model.forward([StepRequest(prompt, 0, slot_blocks(model, 0))])
            ok = report("prefill", prefill[0], expected[len(prompt) - 1], limit)
            decode = model.forward([StepRequest([66], len(prompt), slot_blocks(model, 0))])
            ok &= report("decode", decode[0], expected[len(prompt)], limit)
            greedy = SamplingParams(temperature=0.0)
            token = model.infer([StepRequest([66], len(prompt), slot_blocks(model, 0), greedy)])
            reference_token = int(expected[len(prompt)].argmax())
            print(f"[smoke] greedy token {token[0]} (argmax of reference {reference_token})")
            ok &= args.dtype != "f32" or token[0] == reference_token
    print(f"[smoke] {'ok' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


# The parity suite's limit on the logits in f32; in bf16/f16 a loose bound (their parity limits depend on the
# checkpoint and are checked there): enough to tell a working device from a broken one.
LOGITS_LIMIT = {"f32": 1e-4, "bf16": 0.1, "f16": 0.05}


def report(step: str, ours: np.ndarray, expected: np.ndarray, limit: float) -> bool:
    error = float(np.linalg.norm(ours - expected) / np.linalg.norm(expected))
    print(f"[smoke] {step}: logits rel. L2 error vs transformers f32 {error:.3g} (limit {limit:g})", flush=True)
    return error <= limit


if __name__ == "__main__":
    sys.exit(main())
